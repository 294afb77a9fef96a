"""OAuth tokens, SAML sessions, CAS tickets and per-user sessions: contract §3.5–3.7.

Each endpoint is a translation to the SSO extension commands (docs/sso-commands.md)
run through the gate, so a token answers the same over HTTP, RESP and gRPC. JSON
records from the commands carry Unix seconds; this door shows ``created_at`` and
``expires_at`` as RFC 3339 strings (contract §3.2), except in RFC 7662
introspection, whose ``exp``/``iat`` are numbers by definition.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tokenginx.transport.http.api_sessions import rfc3339
from tokenginx.transport.http.calls import Door, opt_int, opt_object, opt_str, req_str, str_map
from tokenginx.transport.http.endpoints import (
    BOOL,
    INT,
    NULLABLE_TIME,
    STR,
    STR_MAP,
    TTL_IN,
    Endpoint,
    Handler,
    obj,
    request_obj,
    success_of,
)
from tokenginx.transport.http.envelope import ApiError, invalid, json_response, not_found, success

_TIME_FIELDS = ("created_at", "expires_at")


def with_times(record: dict[str, Any]) -> dict[str, Any]:
    """A command's JSON record with its epoch-second times as RFC 3339."""
    for name in _TIME_FIELDS:
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record[name] = rfc3339(int(value * 1000)) if value > 0 else None
    return record


def _opt(argv: list[bytes], name: bytes, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, (dict, list)):
        value = orjson.dumps(value).decode()
    argv += [name, str(value).encode()]


def build(door: Door) -> list[Endpoint]:
    protocols = door.server.config.protocols
    clock = door.state.clock

    def expires_at(expires_in: int | None, default: int) -> str:
        return rfc3339(clock() + (expires_in or default) * 1000)

    def record_or_404(reply: Any, what: str) -> dict[str, Any]:
        if reply is None:
            raise not_found(f"{what} not found")
        return with_times(orjson.loads(reply))

    def reader(param: str, command: bytes, what: str) -> Handler:
        """GET of one record by the id in the path."""

        async def read(request: Request) -> Response:
            ident = request.path_params[param]
            reply = door.call(door.client(request), command, ident.encode())
            return success(record_or_404(reply, what))

        return read

    def remover(param: str, command: bytes, what: str, done: str) -> Handler:
        """DELETE of one record by the id in the path; 404 when there was none."""

        async def remove(request: Request) -> Response:
            ident = request.path_params[param]
            if not door.call(door.client(request), command, ident.encode()):
                raise not_found(f"{what} not found")
            return success(message=done)

        return remove

    # -- OAuth -------------------------------------------------------------------------
    async def set_token(request: Request) -> Response:
        body = await door.json_body(request)
        token = req_str(body, "access_token")
        token_type = opt_str(body, "token_type", "Bearer")
        expires_in = opt_int(body, "expires_in", None, minimum=1)
        refresh = opt_str(body, "refresh_token")
        scope = opt_str(body, "scope")
        user = opt_str(body, "user_id")
        client_id = opt_str(body, "client_id")
        metadata = str_map(body, "metadata")
        argv = [b"OAUTH.TOKEN.SET", token.encode(), user.encode(), scope.encode()]
        _opt(argv, b"REFRESH_TOKEN", refresh)
        _opt(argv, b"EXPIRES_IN", expires_in)
        _opt(argv, b"CLIENT_ID", client_id)
        _opt(argv, b"TOKEN_TYPE", token_type)
        _opt(argv, b"METADATA", metadata)
        door.call(door.client(request), *argv)
        data = {"access_token": token,
                "expires_at": expires_at(expires_in, protocols.oauth.default_token_ttl)}
        return success(data, "Token stored", 201)


    get_token = reader("token", b"OAUTH.TOKEN.GET", "Token")

    async def introspect(request: Request) -> Response:
        body = await door.form_or_json(request)
        token = req_str(body, "token")
        argv = [b"OAUTH.TOKEN.INTROSPECT", token.encode()]
        _opt(argv, b"TOKEN_TYPE_HINT", opt_str(body, "token_type_hint"))
        reply = door.call(door.client(request), *argv)
        # RFC 7662 §2.2: the bare introspection object, no envelope
        return Response(reply, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def revoke(request: Request) -> Response:
        body = await door.form_or_json(request)
        token = req_str(body, "token")
        argv = [b"OAUTH.TOKEN.REVOKE", token.encode()]
        _opt(argv, b"TOKEN_TYPE_HINT", opt_str(body, "token_type_hint"))
        if body.get("cascade") in (True, "true", "1"):
            argv.append(b"CASCADE")
        revoked = door.call(door.client(request), *argv)
        # RFC 7009 §2.2: 200 whether or not the token existed
        return json_response({"status": "success", "data": {"revoked": revoked}})

    async def set_code(request: Request) -> Response:
        body = await door.json_body(request)
        code = req_str(body, "code")
        argv = [b"OAUTH.CODE.SET", code.encode()]
        for field in ("client_id", "redirect_uri", "user_id"):
            argv.append(req_str(body, field).encode())
        argv.append(opt_str(body, "scope").encode())
        expires_in = opt_int(body, "expires_in", None, minimum=1)
        _opt(argv, b"EXPIRES_IN", expires_in)
        challenge = opt_str(body, "code_challenge")
        method = opt_str(body, "code_challenge_method")
        if method and not challenge:
            raise invalid("code_challenge", "is required with code_challenge_method")
        _opt(argv, b"CODE_CHALLENGE", challenge)
        _opt(argv, b"CODE_CHALLENGE_METHOD", method)
        _opt(argv, b"NONCE", opt_str(body, "nonce"))
        door.call(door.client(request), *argv)
        data = {"code": code, "expires_at": expires_at(expires_in, protocols.oauth.default_code_ttl)}
        return success(data, "Authorization code stored", 201)

    async def consume_code(request: Request) -> Response:
        code = request.path_params["code"]
        reply = door.call(door.client(request), b"OAUTH.CODE.CONSUME", code.encode())
        return success(record_or_404(reply, "Authorization code"))

    # -- SAML --------------------------------------------------------------------------
    async def set_saml(request: Request) -> Response:
        body = await door.json_body(request)
        index = req_str(body, "session_index")
        name_id = req_str(body, "name_id")
        assertion = req_str(body, "assertion", allow_empty=True)
        expires_in = opt_int(body, "expires_in", None, minimum=1)
        attributes = opt_object(body, "attributes")
        argv = [b"SAML.SESSION.SET", index.encode(), name_id.encode(), assertion.encode()]
        _opt(argv, b"EXPIRES_IN", expires_in)
        _opt(argv, b"NAME_ID_FORMAT", opt_str(body, "name_id_format"))
        _opt(argv, b"ATTRIBUTES", attributes)
        door.call(door.client(request), *argv)
        data = {"session_index": index,
                "expires_at": expires_at(expires_in, protocols.saml.default_session_ttl)}
        return success(data, "SAML session stored", 201)


    get_saml = reader("session_index", b"SAML.SESSION.GET", "SAML session")
    del_saml = remover("session_index", b"SAML.SESSION.DEL", "SAML session", "SAML session deleted")

    async def saml_by_name_id(request: Request) -> Response:
        name_id = request.path_params["name_id"]
        reply = door.call(door.client(request), b"SAML.SESSION.LIST", name_id.encode())
        return success([with_times(r) for r in orjson.loads(reply)])

    # -- CAS ---------------------------------------------------------------------------
    async def set_tgt(request: Request) -> Response:
        body = await door.json_body(request)
        tgt = req_str(body, "tgt_id")
        user = req_str(body, "user_id")
        expires_in = opt_int(body, "expires_in", None, minimum=1)
        attributes = opt_object(body, "attributes")
        argv = [b"CAS.TGT.SET", tgt.encode(), user.encode()]
        _opt(argv, b"EXPIRES_IN", expires_in)
        _opt(argv, b"ATTRIBUTES", attributes)
        door.call(door.client(request), *argv)
        data = {"tgt_id": tgt, "expires_at": expires_at(expires_in, protocols.cas.default_tgt_ttl)}
        return success(data, "TGT stored", 201)


    get_tgt = reader("tgt_id", b"CAS.TGT.GET", "TGT")
    del_tgt = remover("tgt_id", b"CAS.TGT.DEL", "TGT", "TGT destroyed")

    async def set_st(request: Request) -> Response:
        body = await door.json_body(request)
        st = req_str(body, "st_id")
        tgt = req_str(body, "tgt_id")
        service = req_str(body, "service")
        expires_in = opt_int(body, "expires_in", None, minimum=1)
        argv = [b"CAS.ST.SET", st.encode(), tgt.encode(), service.encode()]
        _opt(argv, b"EXPIRES_IN", expires_in)
        client = door.client(request)
        try:
            door.call(client, *argv)
        except ApiError as e:
            if "unknown or expired TGT" in e.message:
                raise not_found("TGT not found (unknown or expired)") from None
            raise
        data = {"st_id": st, "service": service,
                "expires_at": expires_at(expires_in, protocols.cas.default_st_ttl)}
        return success(data, "ST stored", 201)

    async def validate_st(request: Request) -> Response:
        body = await door.form_or_json(request)
        st = req_str(body, "st_id")
        service = req_str(body, "service")
        reply = door.call(door.client(request), b"CAS.ST.VALIDATE", st.encode(), service.encode())
        return success(orjson.loads(reply))

    # -- users -------------------------------------------------------------------------
    async def user_sessions(request: Request) -> Response:
        user = request.path_params["user_id"]
        reply = door.call(door.client(request), b"SSO.USER.SESSIONS", user.encode())
        return success([with_times(r) for r in orjson.loads(reply)])

    async def revoke_user(request: Request) -> Response:
        user = request.path_params["user_id"]
        revoked = door.call(door.client(request), b"SSO.USER.REVOKE", user.encode())
        return success({"revoked": revoked}, "User sessions revoked")

    # -- schemas -----------------------------------------------------------------------
    id_in = {"type": "string", "minLength": 1}
    expires_in = {**TTL_IN, "minimum": 1}
    introspection = obj(
        {"active": BOOL, "scope": STR, "client_id": STR, "username": STR, "sub": STR,
         "token_type": STR, "exp": INT, "iat": INT},
        ["active"],
    )
    token_in = request_obj(
        {"access_token": id_in, "token_type": STR, "expires_in": expires_in, "refresh_token": STR,
         "scope": STR, "user_id": STR, "client_id": STR, "metadata": STR_MAP},
        ["access_token"],
    )
    token_out = obj(
        {"token_id": STR, "user_id": STR, "client_id": STR, "scope": STR, "token_type": STR,
         "refresh_token": {"type": ["string", "null"]}, "metadata": {"type": "object"},
         "created_at": NULLABLE_TIME, "expires_at": NULLABLE_TIME},
        ["token_id"],
    )
    # RFC 7662 §2.1 / RFC 7009 §2.1: an unknown hint is ignored, the search covers every type
    token_ref = request_obj({"token": id_in, "token_type_hint": {**STR, "examples": ["access_token", "refresh_token"]}}, ["token"])
    saml_in = request_obj(
        {"session_index": id_in, "name_id": id_in, "name_id_format": STR, "assertion": STR,
         "expires_in": expires_in, "attributes": {"type": "object"}},
        ["session_index", "name_id", "assertion"],
    )
    saml_out = obj(
        {"session_index": STR, "name_id": STR, "name_id_format": STR, "assertion": STR,
         "attributes": {"type": "object"}, "created_at": NULLABLE_TIME, "expires_at": NULLABLE_TIME},
        ["session_index", "name_id"],
    )
    tgt_out = obj(
        {"tgt_id": STR, "user_id": STR, "attributes": {"type": "object"},
         "created_at": NULLABLE_TIME, "expires_at": NULLABLE_TIME},
        ["tgt_id", "user_id"],
    )
    validation = obj(
        {"valid": BOOL, "user_id": STR, "attributes": {"type": "object"}, "service": STR,
         "code": STR, "message": STR},
        ["valid"],
    )
    entry = obj({"type": STR, "id": STR, "key": STR, "expires_at": NULLABLE_TIME}, ["type", "key"])
    created = {"type": "string", "format": "date-time"}
    return [
        Endpoint("POST", "/api/v1/oauth/tokens", set_token, "Store an access token (and its refresh token)",
                 "oauth", "setOAuthToken", request=token_in,
                 responses={201: ("Stored", success_of(obj({"access_token": STR, "expires_at": created},
                                                           ["access_token", "expires_at"]), message=True))}),
        Endpoint("GET", "/api/v1/oauth/tokens/{token}", get_token, "Read an access token", "oauth",
                 "getOAuthToken", responses={200: ("The token", success_of(token_out)),
                                             404: ("Unknown, expired or revoked", None)}),
        Endpoint("POST", "/api/v1/oauth/introspect", introspect, "Token introspection (RFC 7662)", "oauth",
                 "introspect", request=token_ref, form=True,
                 responses={200: ("The RFC 7662 object; {\"active\":false} for unknown tokens", introspection)}),
        Endpoint("POST", "/api/v1/oauth/revoke", revoke, "Token revocation (RFC 7009); idempotent", "oauth",
                 "revoke", request=token_ref, form=True,
                 responses={200: ("Revoked (or already gone)", success_of(obj({"revoked": INT})))}),
        Endpoint("POST", "/api/v1/oauth/codes", set_code, "Store an authorization code (one use)", "oauth",
                 "setAuthCode",
                 request={
                     **request_obj(
                         {"code": id_in, "client_id": id_in, "redirect_uri": id_in, "user_id": id_in,
                          "scope": STR, "expires_in": expires_in, "code_challenge": STR,
                          "code_challenge_method": {"enum": ["S256", "plain"]}, "nonce": STR},
                         ["code", "client_id", "redirect_uri", "user_id"]),
                     # PKCE: a method needs its (non-empty) challenge
                     "if": {"properties": {"code_challenge_method": {"enum": ["S256", "plain"]}},
                            "required": ["code_challenge_method"]},
                     "then": {"properties": {"code_challenge": {"type": "string", "minLength": 1}},
                              "required": ["code_challenge"]},
                 },
                 responses={201: ("Stored", success_of(obj({"code": STR, "expires_at": created},
                                                           ["code", "expires_at"]), message=True))}),
        Endpoint("POST", "/api/v1/oauth/codes/{code}/consume", consume_code,
                 "Redeem an authorization code: returns it once, then it is gone", "oauth", "consumeAuthCode",
                 responses={200: ("The code's record", success_of({"type": "object"})),
                            404: ("Unknown, expired or already used", None)}),
        Endpoint("POST", "/api/v1/saml/sessions", set_saml, "Store a SAML session", "saml",
                 "setSAMLSession", request=saml_in,
                 responses={201: ("Stored", success_of(obj({"session_index": STR, "expires_at": created},
                                                           ["session_index", "expires_at"]), message=True))}),
        Endpoint("GET", "/api/v1/saml/sessions/{session_index}", get_saml, "Read a SAML session", "saml",
                 "getSAMLSession", responses={200: ("The session", success_of(saml_out)),
                                              404: ("Unknown or expired", None)}),
        Endpoint("DELETE", "/api/v1/saml/sessions/{session_index}", del_saml, "End a SAML session", "saml",
                 "deleteSAMLSession", responses={200: ("Deleted", success_of(message=True)),
                                                 404: ("Unknown or expired", None)}),
        Endpoint("GET", "/api/v1/saml/name-ids/{name_id}/sessions", saml_by_name_id,
                 "Every live SAML session of a NameID (for Single Logout)", "saml", "listSAMLSessions",
                 responses={200: ("Sessions", success_of({"type": "array", "items": saml_out}))}),
        Endpoint("POST", "/api/v1/cas/tgts", set_tgt, "Store a ticket-granting ticket", "cas", "setTGT",
                 request=request_obj({"tgt_id": id_in, "user_id": id_in, "expires_in": expires_in,
                              "attributes": {"type": "object"}}, ["tgt_id", "user_id"]),
                 responses={201: ("Stored", success_of(obj({"tgt_id": STR, "expires_at": created},
                                                           ["tgt_id", "expires_at"]), message=True))}),
        Endpoint("GET", "/api/v1/cas/tgts/{tgt_id}", get_tgt, "Read a TGT", "cas", "getTGT",
                 responses={200: ("The TGT", success_of(tgt_out)), 404: ("Unknown or expired", None)}),
        Endpoint("DELETE", "/api/v1/cas/tgts/{tgt_id}", del_tgt, "Destroy a TGT and its tickets", "cas",
                 "deleteTGT", responses={200: ("Destroyed", success_of(message=True)),
                                         404: ("Unknown or expired", None)}),
        Endpoint("POST", "/api/v1/cas/sts", set_st, "Store a service ticket", "cas", "setST",
                 request=request_obj({"st_id": id_in, "tgt_id": id_in, "service": id_in, "expires_in": expires_in},
                             ["st_id", "tgt_id", "service"]),
                 responses={201: ("Stored", success_of(obj({"st_id": STR, "service": STR, "expires_at": created},
                                                           ["st_id", "service", "expires_at"]), message=True))}),
        Endpoint("POST", "/api/v1/cas/validate", validate_st,
                 "Validate (and consume) a service ticket", "cas", "validateST", form=True,
                 request=request_obj({"st_id": id_in, "service": id_in}, ["st_id", "service"]),
                 responses={200: ("The outcome; valid:false for an unknown, used or mismatched ticket",
                                  success_of(validation))}),
        Endpoint("GET", "/api/v1/users/{user_id}/sessions", user_sessions,
                 "Every live token, session and ticket of a user", "users", "listUserSessions",
                 responses={200: ("Entries", success_of({"type": "array", "items": entry}))}),
        Endpoint("DELETE", "/api/v1/users/{user_id}/sessions", revoke_user,
                 "Revoke everything of a user (e.g. after a password change)", "users", "revokeUserSessions",
                 responses={200: ("Count revoked", success_of(obj({"revoked": INT}, ["revoked"]), message=True))}),
    ]

