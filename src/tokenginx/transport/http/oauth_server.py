"""The protocol endpoints of the OAuth 2.0 / OpenID Connect authorization server and
its admin API.

``routes(idp, metrics)``: ``POST /oauth/token``, ``GET|POST /oauth/userinfo``,
``GET /oauth/jwks``, ``GET /.well-known/openid-configuration``, ``POST
/oauth/introspect`` (RFC 7662) and ``POST /oauth/revoke`` (RFC 7009). They answer in
the RFCs' conventions (``{"error","error_description"}``, ``Cache-Control:
no-store``), not the REST envelope. ``/oauth/authorize`` and ``/oauth/logout`` are
:mod:`oauth_browser`'s.

``endpoints(idp, door)``: ``/api/v1/admin/oauth/clients`` and
``/api/v1/admin/oauth/keys``, behind the server's API key like the rest of /api/v1.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tokenginx.idp.calls import StoreError
from tokenginx.idp.clients import (
    AUTH_METHODS,
    BACKCHANNEL_URI_PATTERN,
    CLIENT_ID_PATTERN,
    GRANT_TYPES,
    REDIRECT_URI_PATTERN,
    SCOPE_PATTERN,
    SIGNING_ALGS,
    ClientError,
    ClientExists,
    OAuthClient,
)
from tokenginx.idp.tokens import GrantError
from tokenginx.transport.http.api_sessions import rfc3339
from tokenginx.transport.http.calls import Door
from tokenginx.transport.http.endpoints import (
    BOOL,
    NULLABLE_TIME,
    STR,
    Endpoint,
    obj,
    request_obj,
    success_of,
)
from tokenginx.transport.http.envelope import (
    ApiError,
    from_command_error,
    invalid,
    not_found,
    success,
)

if TYPE_CHECKING:
    from tokenginx.idp import IdP
    from tokenginx.transport.http.metrics import Metrics

log = logging.getLogger("tokenginx.idp")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"
# Nothing this server issues or accepts is longer (its tokens are 43 characters).
MAX_PARAM = 8192
SCOPES = ("openid", "profile", "email", "phone")
CLAIMS = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp", "name",
          "preferred_username", "nickname", "picture", "email", "email_verified", "phone_number",
          "phone_number_verified")


class OAuthError(Exception):
    """An RFC 6749 §5.2 / RFC 6750 §3.1 error response."""

    def __init__(self, error: str, description: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.headers = headers or {}


def oauth_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, {**NO_STORE, **(headers or {})}, "application/json")


def error_json(e: OAuthError) -> Response:
    return oauth_json({"error": e.error, "error_description": e.description}, e.status, e.headers)


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 §5.2: 401 with a challenge for the scheme the client can use.
    return OAuthError("invalid_client", description, 401, {"WWW-Authenticate": 'Basic realm="tokenginx"'})


# -- request parsing -------------------------------------------------------------------
async def read_form(door: Door, request: Request) -> dict[str, str]:
    """The x-www-form-urlencoded body; a parameter given twice is refused (RFC 6749 §3.2)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    try:
        raw = await door.raw_body(request)
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except ApiError as e:
        raise OAuthError("invalid_request", e.details["reason"] if e.details else e.message, e.status) from None
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body must be UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} given more than once")
        if len(value) > MAX_PARAM:
            raise OAuthError("invalid_request", f"parameter {name!r} is longer than {MAX_PARAM} characters")
        form[name] = value
    return form


def _basic(header: str) -> tuple[str, str]:
    """``client_id``/``client_secret`` from HTTP Basic; both form-urlencoded (RFC 6749 §2.3.1)."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    if ":" not in decoded:
        raise invalid_client("malformed Basic credentials")
    cid, secret = decoded.split(":", 1)
    return unquote_plus(cid), unquote_plus(secret)


def authenticate(idp: IdP, request: Request, form: dict[str, str],
                 methods: tuple[str, ...] = AUTH_METHODS) -> OAuthClient:
    """The calling client, authenticated with the one method it registered (RFC 6749
    §2.3: exactly one method per request)."""
    header = request.headers.get("authorization", "")
    form_id, post_secret = form.get("client_id"), form.get("client_secret")
    if header[:6].lower() == "basic ":
        if post_secret is not None:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        cid, secret = _basic(header)
        if form_id is not None and form_id != cid:
            raise invalid_client("client_id does not match the Basic credentials")
        method: str = "client_secret_basic"
        given: str | None = secret
    elif post_secret is not None:
        if not form_id:
            raise invalid_client("client_id is required with client_secret")
        cid, given, method = form_id, post_secret, "client_secret_post"
    elif form_id:
        cid, given, method = form_id, None, "none"
    else:
        raise invalid_client("client authentication is required")
    client = idp.clients.authenticate(cid, given)
    if client is None or client.token_endpoint_auth_method != method or method not in methods:
        raise invalid_client("client authentication failed")
    return client


# -- the protocol endpoints --------------------------------------------------------------
def routes(idp: IdP, metrics: Metrics) -> list[BaseRoute]:
    if not idp.config.oauth.server.enabled:
        return []
    idp.clients  # noqa: B018 - a bad oauth.server.clients entry fails the start, not a request
    door = Door(idp.server)
    tokens = idp.tokens
    issued = metrics.oauth_tokens_issued
    introspection = metrics.oauth_introspection
    observe = metrics.observe_http

    def protocol(path: str, methods: list[str], handler: Any) -> Route:
        """A route answering OAuth errors in the RFC shape, with the HTTP metrics."""

        async def endpoint(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                response = await handler(request)
            except OAuthError as e:
                response = error_json(e)
            except StoreError as e:
                log.warning("%s %s: store refused: %s", request.method, path, e)
                response = error_json(OAuthError("temporarily_unavailable", "the token store is unavailable", 503))
            except Exception:
                log.exception("%s %s failed", request.method, path)
                response = error_json(OAuthError("server_error", "internal error", 500))
            observe(request.method, path, response.status_code, time.perf_counter() - t0)
            return response

        return Route(path, endpoint, methods=methods)

    async def token(request: Request) -> Response:
        form = await read_form(door, request)
        client = authenticate(idp, request, form)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type not in GRANT_TYPES:
            # decisions.md §14: implicit and password are not offered (Security BCP).
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        await idp.keys.ready()  # key creation/rotation off the event loop
        try:
            if grant_type == "authorization_code":
                out = tokens.authorization_code(client, form.get("code", ""), form.get("redirect_uri", ""),
                                                form.get("code_verifier"))
            elif grant_type == "refresh_token":
                out = tokens.refresh_token(client, form.get("refresh_token", ""), form.get("scope"))
            else:
                out = tokens.client_credentials(client, form.get("scope"))
        except GrantError as e:
            raise OAuthError(e.error, e.description, e.status) from None
        issued.labels(grant_type, client.client_id).inc()
        return oauth_json(out)

    def bearer_error(error: str, description: str, status: int = 401) -> OAuthError:
        challenge = f'Bearer realm="tokenginx", error="{error}", error_description="{description}"'
        if error == "insufficient_scope":
            challenge += ', scope="openid"'
        return OAuthError(error, description, status, {"WWW-Authenticate": challenge})

    async def userinfo(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        access = header[7:].strip() if header[:7].lower() == "bearer " else None
        if request.method == "POST" and request.headers.get("content-type", "").startswith(FORM):
            form = await read_form(door, request)
            if "access_token" in form:
                if access is not None:
                    raise OAuthError("invalid_request", "send the token once (header or body)")
                access = form["access_token"]  # RFC 6750 §2.2
        if not access:
            raise bearer_error("invalid_token", "a Bearer access token is required")
        claims, error = tokens.userinfo(access)
        if claims is None:
            if error == "insufficient_scope":
                raise bearer_error(error, "the token lacks the openid scope", 403)
            raise bearer_error(error, "the access token is unknown, expired or revoked")
        return oauth_json(claims)

    async def jwks(request: Request) -> Response:
        await idp.keys.ready()
        body = orjson.dumps(idp.keys.jwks())
        return Response(body, 200, {"Cache-Control": "public, max-age=60"}, "application/jwk-set+json")

    async def discovery(request: Request) -> Response:
        iss = idp.issuer
        pkce = ["S256", "plain"] if idp.config.oauth.server.allow_plain_pkce else ["S256"]
        doc = {
            "issuer": iss,
            "authorization_endpoint": f"{iss}/oauth/authorize",
            "token_endpoint": f"{iss}/oauth/token",
            "userinfo_endpoint": f"{iss}/oauth/userinfo",
            "jwks_uri": f"{iss}/oauth/jwks",
            "end_session_endpoint": f"{iss}/oauth/logout",
            "introspection_endpoint": f"{iss}/oauth/introspect",
            "revocation_endpoint": f"{iss}/oauth/revoke",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "code_challenge_methods_supported": pkce,
            "claims_supported": list(CLAIMS),
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": False,
        }
        return Response(orjson.dumps(doc), 200, {"Cache-Control": "public, max-age=300"}, "application/json")

    async def introspect(request: Request) -> Response:
        t0 = time.perf_counter()
        form = await read_form(door, request)
        # RFC 7662 §2.1: the caller must be authorized; a public client cannot be.
        client = authenticate(idp, request, form, ("client_secret_basic", "client_secret_post"))
        if "token" not in form:
            raise OAuthError("invalid_request", "token is required")
        out = tokens.introspect(client, form["token"], form.get("token_type_hint"))
        introspection.observe(time.perf_counter() - t0)
        return oauth_json(out)

    async def revoke(request: Request) -> Response:
        form = await read_form(door, request)
        client = authenticate(idp, request, form)
        if "token" not in form:
            raise OAuthError("invalid_request", "token is required")
        n = tokens.revoke(client, form["token"], form.get("token_type_hint"))
        if n:
            log.info("oauth revoke client=%s revoked=%d", client.client_id, n)
        return Response(b"", 200, NO_STORE)

    return [
        protocol("/oauth/token", ["POST"], token),
        protocol("/oauth/userinfo", ["GET", "POST"], userinfo),
        protocol("/oauth/jwks", ["GET"], jwks),
        protocol("/.well-known/openid-configuration", ["GET"], discovery),
        protocol("/oauth/introspect", ["POST"], introspect),
        protocol("/oauth/revoke", ["POST"], revoke),
    ]


# -- admin API ----------------------------------------------------------------------------
_CLIENT_SCHEMA = obj(
    {
        "client_id": STR, "name": STR, "public": BOOL,
        "redirect_uris": {"type": "array", "items": STR},
        "grant_types": {"type": "array", "items": {"enum": list(GRANT_TYPES)}},
        "scopes": {"type": "array", "items": STR},
        "token_endpoint_auth_method": {"enum": list(AUTH_METHODS)},
        "backchannel_logout_uri": {"type": ["string", "null"]},
        "post_logout_redirect_uris": {"type": "array", "items": STR},
        "id_token_signed_response_alg": {"enum": list(SIGNING_ALGS)},
        "resource_server": BOOL,
        "source": {"enum": ["config", "api"]},
        "created_at": NULLABLE_TIME,
    },
    ["client_id", "redirect_uris", "grant_types", "scopes", "token_endpoint_auth_method"],
)
_CLIENT_IN = request_obj(
    {
        "client_id": {"type": "string", "pattern": CLIENT_ID_PATTERN},
        "name": STR,
        "redirect_uris": {"type": "array", "items": {"type": "string", "pattern": REDIRECT_URI_PATTERN}},
        "grant_types": {"type": "array", "items": {"enum": list(GRANT_TYPES)}},
        "scopes": {"type": "array", "items": {"type": "string", "pattern": SCOPE_PATTERN}},
        "token_endpoint_auth_method": {"enum": list(AUTH_METHODS)},
        "backchannel_logout_uri": {"type": "string", "pattern": BACKCHANNEL_URI_PATTERN},
        "post_logout_redirect_uris": {"type": "array",
                                      "items": {"type": "string", "pattern": REDIRECT_URI_PATTERN}},
        "id_token_signed_response_alg": {"enum": list(SIGNING_ALGS)},
        "resource_server": BOOL,
    },
) | {
    "additionalProperties": False,
    "allOf": [
        # A public client cannot use client_credentials.
        {"if": {"properties": {"token_endpoint_auth_method": {"const": "none"}},
                "required": ["token_endpoint_auth_method"]},
         "then": {"properties": {"grant_types": {"not": {"type": "array",
                                                         "contains": {"const": "client_credentials"}}}}}},
        # authorization_code (also the default) needs a redirect URI.
        {"anyOf": [
            {"properties": {"redirect_uris": {"type": "array", "minItems": 1}}, "required": ["redirect_uris"]},
            {"properties": {"grant_types": {"type": "array", "minItems": 1,
                                            "items": {"enum": ["refresh_token", "client_credentials"]}}},
             "required": ["grant_types"]},
        ]},
    ],
}
_KEY_SCHEMA = obj({"kid": STR, "alg": STR, "created_at": NULLABLE_TIME, "retired_at": NULLABLE_TIME},
                  ["kid", "alg"])


def _time(seconds: Any) -> str | None:
    return rfc3339(int(seconds) * 1000) if isinstance(seconds, int) and seconds > 0 else None


def client_view(client: OAuthClient) -> dict[str, Any]:
    """The admin API's view of a client: no secret, RFC 3339 times (contract §3.2)."""
    data = client.as_json()
    data["created_at"] = _time(client.created_at)
    return data


def key_views(idp: IdP) -> list[dict[str, Any]]:
    return [{**k, "created_at": _time(k["created_at"]), "retired_at": _time(k["retired_at"])}
            for k in idp.keys.kids()]


def endpoints(idp: IdP, door: Door) -> list[Endpoint]:
    if not idp.config.oauth.server.enabled:
        return []

    def store_error(e: StoreError) -> ApiError:
        return from_command_error(e.error)

    async def list_clients(request: Request) -> Response:
        door.client(request)
        try:
            return success({"clients": [client_view(c) for c in idp.clients.all()]})
        except StoreError as e:
            raise store_error(e) from None

    async def create_client(request: Request) -> Response:
        door.client(request)
        body = await door.json_body(request)
        unknown = set(body) - set(_CLIENT_IN["properties"])
        if unknown:
            raise invalid(sorted(unknown)[0], "unknown field")
        try:
            client, secret = idp.clients.create({k: v for k, v in body.items() if v is not None})
        except ClientExists as e:
            raise ApiError(409, "CONFLICT", str(e), {"field": e.field, "reason": e.reason}) from None
        except ClientError as e:
            raise invalid(e.field, e.reason) from None
        except StoreError as e:
            raise store_error(e) from None
        data = client_view(client)
        if secret is not None:
            data["client_secret"] = secret  # shown this once
        return success(data, "Client created; store the secret now, it is not shown again", status=201)

    async def get_client(request: Request) -> Response:
        door.client(request)
        try:
            client = idp.clients.get(request.path_params["client_id"])
        except StoreError as e:
            raise store_error(e) from None
        if client is None:
            raise not_found("No such client")
        return success(client_view(client))

    async def delete_client(request: Request) -> Response:
        door.client(request)
        try:
            gone = idp.clients.delete(request.path_params["client_id"])
        except ClientError as e:
            raise ApiError(409, "CONFLICT", e.reason, {"field": e.field, "reason": e.reason}) from None
        except StoreError as e:
            raise store_error(e) from None
        if not gone:
            raise not_found("No such client")
        return success(message="Client deleted")

    async def list_keys(request: Request) -> Response:
        door.client(request)
        try:
            await idp.keys.ready()
            return success({"keys": key_views(idp)})
        except StoreError as e:
            raise store_error(e) from None

    async def rotate_keys(request: Request) -> Response:
        door.client(request)
        try:
            kids = await idp.keys.rotate()
            return success({"keys": key_views(idp), "new": kids}, "Signing keys rotated")
        except StoreError as e:
            raise store_error(e) from None

    client_out = success_of(_CLIENT_SCHEMA)
    created = success_of(obj({**_CLIENT_SCHEMA["properties"], "client_secret": STR},
                             _CLIENT_SCHEMA["required"]), message=True)
    keys_out = success_of(obj({"keys": {"type": "array", "items": _KEY_SCHEMA}}, ["keys"]))
    return [
        Endpoint("GET", "/api/v1/admin/oauth/clients", list_clients, "List OAuth clients", "oauth-admin",
                 "listOAuthClients",
                 responses={200: ("Clients (config and run-time; never secrets)",
                                  success_of(obj({"clients": {"type": "array", "items": _CLIENT_SCHEMA}})))}),
        Endpoint("POST", "/api/v1/admin/oauth/clients", create_client,
                 "Register an OAuth client (the secret is returned once)", "oauth-admin", "createOAuthClient",
                 request=_CLIENT_IN,
                 responses={201: ("Created", created), 409: ("client_id taken", None)}),
        Endpoint("GET", "/api/v1/admin/oauth/clients/{client_id}", get_client, "Read an OAuth client",
                 "oauth-admin", "getOAuthClient",
                 responses={200: ("The client", client_out), 404: ("No such client", None)}),
        Endpoint("DELETE", "/api/v1/admin/oauth/clients/{client_id}", delete_client,
                 "Delete a run-time OAuth client", "oauth-admin", "deleteOAuthClient",
                 responses={200: ("Deleted", success_of(message=True)), 404: ("No such client", None),
                            409: ("Declared in the config file", None)}),
        Endpoint("GET", "/api/v1/admin/oauth/keys", list_keys, "List the signing keys (no key material)",
                 "oauth-admin", "listSigningKeys", responses={200: ("Keys", keys_out)}),
        Endpoint("POST", "/api/v1/admin/oauth/keys/rotate", rotate_keys,
                 "Rotate the signing keys now (old public keys stay in the JWKS until their tokens expire)",
                 "oauth-admin", "rotateSigningKeys",
                 responses={200: ("Rotated", success_of(obj({"keys": {"type": "array", "items": _KEY_SCHEMA},
                                                             "new": {"type": "array", "items": STR}}),
                                                        message=True))}),
    ]
