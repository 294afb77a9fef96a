"""The seed 001 login API (``/api/v1/auth``) and the user administration API
(``/api/v1/admin/users``) of the built-in identity provider.

A login issues a bearer token kept in the keyspace as an OAuth access token of the
client ``tokenginx-login`` (``OAUTH.TOKEN.SET``), indexed to the user: it answers
``OAUTH.TOKEN.INTROSPECT`` on every door, and ``SSO.USER.REVOKE`` — run when an account
is disabled, deleted or its password reset — ends it. The ``/auth`` endpoints
authenticate their callers themselves (a password, or that token); the ``/admin``
endpoints need the server's API key or requirepass password like the rest of /api/v1.
"""

from __future__ import annotations

import secrets
from functools import wraps
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tokenginx.idp.accounts import (
    EMAIL_PATTERN,
    MAX_PASSWORD,
    MAX_TEXT,
    PHONE_PATTERN,
    TEXT_PATTERN,
    USERNAME_PATTERN,
    Account,
    AccountError,
    LoginFailed,
    UnknownAccount,
)
from tokenginx.idp.calls import StoreError
from tokenginx.transport.http.api_sessions import rfc3339
from tokenginx.transport.http.calls import Door, opt_str, req_str
from tokenginx.transport.http.endpoints import (
    BOOL,
    INT,
    NULLABLE_TIME,
    STR,
    Endpoint,
    Handler,
    obj,
    request_obj,
    success_of,
)
from tokenginx.transport.http.envelope import ApiError, from_command_error, invalid, success

if TYPE_CHECKING:
    from tokenginx.idp import IdP

LOGIN_CLIENT = "tokenginx-login"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def bad_credentials() -> ApiError:
    return ApiError(401, "INVALID_CREDENTIALS", "Invalid username or password")


def invalid_token() -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        "Invalid or expired token",
        headers={"WWW-Authenticate": 'Bearer realm="tokenginx", error="invalid_token"'},
    )


def account_error(e: AccountError) -> ApiError:
    if isinstance(e, UnknownAccount):
        return ApiError(404, "NOT_FOUND", "User not found")
    if "already exists" in str(e):
        return ApiError(409, "USER_EXISTS", str(e))
    return ApiError(400, "INVALID_REQUEST", str(e))


def guarded(handler: Handler) -> Handler:
    """Store refusals (``-OOM``, ``-LOADING``…) and account errors in the envelope."""

    @wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError as e:
            raise from_command_error(e.error) from None
        except AccountError as e:
            raise account_error(e) from None

    return run


def bearer(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise invalid_token()
    return token


def with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


def profile(body: dict[str, Any]) -> dict[str, str | None]:
    return {name: opt_str(body, name) or None for name in ("email", "phone", "nickname", "avatar")}


def endpoints(idp: IdP, door: Door) -> list[Endpoint]:
    accounts = idp.accounts
    calls = idp.calls
    config = idp.config.idp
    clock = door.state.clock

    def token_user(request: Request) -> tuple[str, Account]:
        """The live login token of the request and its (enabled) account, or 401."""
        token = bearer(request)
        raw = calls("OAUTH.TOKEN.GET", token)
        if raw is None:
            raise invalid_token()
        record = orjson.loads(raw)
        if record.get("client_id") != LOGIN_CLIENT:
            raise invalid_token()
        account = accounts.get(record.get("user_id") or "")
        if account is None or account.disabled:
            raise invalid_token()
        return token, account

    # -- /api/v1/auth ------------------------------------------------------------------
    async def login(request: Request) -> Response:
        body = await door.form_or_json(request)
        username = req_str(body, "username")
        password = req_str(body, "password")
        peer = request.client
        ip = peer.host if peer else ""
        try:
            account = await accounts.authenticate(username, password, ip)
        except LoginFailed as e:
            if e.retry_after is not None:
                raise ApiError(429, "TOO_MANY_ATTEMPTS", e.message,
                               headers={"Retry-After": str(e.retry_after)}) from None
            raise bad_credentials() from None
        ttl = max(1, config.login_token_ttl)
        token = secrets.token_urlsafe(32)
        calls("OAUTH.TOKEN.SET", token, account.username, "", "EXPIRES_IN", ttl,
              "CLIENT_ID", LOGIN_CLIENT, "TOKEN_TYPE", "Bearer")
        data = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ttl,
            "expires_at": rfc3339(clock() + ttl * 1000),
            "user": account.public(),
        }
        return with_headers(success(data, "Login successful"), _NO_STORE)

    async def register(request: Request) -> Response:
        if not config.registration:
            raise ApiError(403, "REGISTRATION_DISABLED",
                           "Self-service registration is disabled (idp.registration)")
        body = await door.json_body(request)
        username = req_str(body, "username")
        password = req_str(body, "password")
        fields = profile(body)
        if fields["nickname"] is None:
            fields["nickname"] = username  # as seed 001: the nickname defaults to the name
        account = await accounts.create(username, password, **fields)
        return success({"user_id": account.username, **account.public()}, "User registered", 201)

    async def me(request: Request) -> Response:
        _, account = token_user(request)
        return with_headers(success(account.public()), _NO_STORE)

    async def logout(request: Request) -> Response:
        token, _ = token_user(request)
        calls("OAUTH.TOKEN.REVOKE", token)
        return success(message="Logged out")

    # -- /api/v1/admin/users -----------------------------------------------------------
    def admin(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            door.client(request)  # the API key / requirepass, or 401
            return await handler(request)

        return run

    def path_user(request: Request) -> Account:
        account = accounts.get(request.path_params["username"])
        if account is None:
            raise ApiError(404, "NOT_FOUND", "User not found")
        return account

    async def list_users(request: Request) -> Response:
        return success([a.public() for a in accounts.list()])

    async def create_user(request: Request) -> Response:
        body = await door.json_body(request)
        username = req_str(body, "username")
        password = req_str(body, "password")
        disabled = body.get("disabled") or False
        if not isinstance(disabled, bool):
            raise invalid("disabled", "must be a boolean")
        account = await accounts.create(username, password, **profile(body))
        if disabled:
            accounts.set_disabled(account.username, True)
            account = accounts.get(account.username) or account
        return success(account.public(), "User created", 201)

    async def get_user(request: Request) -> Response:
        return success(path_user(request).public())

    async def delete_user(request: Request) -> Response:
        if not accounts.delete(request.path_params["username"]):
            raise ApiError(404, "NOT_FOUND", "User not found")
        return success(message="User deleted")

    def toggler(disabled: bool, done: str) -> Handler:
        async def toggle(request: Request) -> Response:
            accounts.set_disabled(path_user(request).username, disabled)
            return success(path_user(request).public(), done)

        return toggle

    async def set_password(request: Request) -> Response:
        account = path_user(request)
        body = await door.json_body(request)
        password = req_str(body, "password")
        await accounts.reset_password(account.username, password)
        return success(message="Password reset; the user's tokens and sessions were revoked")

    # -- schemas -----------------------------------------------------------------------
    user = obj(
        {"id": STR, "username": STR, "nickname": {"type": ["string", "null"]},
         "email": {"type": ["string", "null"]}, "phone": {"type": ["string", "null"]},
         "avatar": {"type": ["string", "null"]}, "is_superuser": BOOL, "status": BOOL,
         "disabled": BOOL, "created_at": NULLABLE_TIME, "last_login_at": NULLABLE_TIME,
         "last_login_ip": {"type": ["string", "null"]}},
        ["id", "username", "status", "disabled"],
    )
    name_in = {"type": "string", "pattern": USERNAME_PATTERN,
               "description": "case-insensitive; stored in lower case"}
    login_name = {"type": "string", "minLength": 1}
    password_in = {"type": "string", "minLength": max(1, config.password_min_length),
                   "maxLength": MAX_PASSWORD, "format": "password"}
    login_password = {"type": "string", "minLength": 1, "format": "password"}
    # "" is accepted and means "not given", like null.
    text_in = {"type": "string", "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN}
    profile_in = {
        "email": {"anyOf": [{"const": ""}, {**text_in, "pattern": EMAIL_PATTERN}, {"type": "null"}]},
        "phone": {"anyOf": [{"const": ""}, {**text_in, "pattern": PHONE_PATTERN}, {"type": "null"}]},
        "nickname": text_in,
        "avatar": text_in,
    }
    login_out = obj(
        {"access_token": STR, "token_type": {"const": "bearer"}, "expires_in": INT,
         "expires_at": {"type": "string", "format": "date-time"}, "user": user},
        ["access_token", "token_type", "expires_in"],
    )

    def ep(method: str, path: str, handler: Handler, summary: str, tag: str, op: str,
           **kw: Any) -> Endpoint:
        return Endpoint(method, path, guarded(handler), summary, tag, op, **kw)

    admin_tag = "admin"
    out = [
        ep("POST", "/api/v1/auth/login", login, "Log in with username and password: a bearer token",
           "auth", "login", auth=False, form=True,
           request=request_obj({"username": login_name, "password": login_password},
                               ["username", "password"]),
           responses={200: ("Logged in", success_of(login_out, message=True)),
                      401: ("Bad credentials (the same for an unknown user)", None),
                      429: ("Locked out after repeated failures; see Retry-After", None)}),
        ep("POST", "/api/v1/auth/register", register, "Create an account (when idp.registration)",
           "auth", "register", auth=False,
           request=request_obj({"username": name_in, "password": password_in, **profile_in},
                               ["username", "password"]),
           responses={201: ("Registered", success_of(obj({"user_id": STR, **user["properties"]},
                                                         ["user_id"]), message=True)),
                      403: ("Registration is disabled", None),
                      409: ("The username is taken", None)}),
        ep("GET", "/api/v1/auth/users/me", me, "The logged-in user (Bearer login token)", "auth",
           "currentUser", auth=False,
           responses={200: ("The user", success_of(user)),
                      401: ("Missing, invalid, expired or revoked token", None)}),
        ep("POST", "/api/v1/auth/logout", logout, "Revoke the login token", "auth", "logout",
           auth=False,
           responses={200: ("Logged out", success_of(message=True)),
                      401: ("Missing, invalid, expired or revoked token", None)}),
        ep("GET", "/api/v1/admin/users", admin(list_users), "List user accounts", admin_tag,
           "listUsers", responses={200: ("Users", success_of({"type": "array", "items": user}))}),
        ep("POST", "/api/v1/admin/users", admin(create_user), "Create a user account", admin_tag,
           "createUser",
           request=request_obj({"username": name_in, "password": password_in, **profile_in,
                                "disabled": BOOL}, ["username", "password"]),
           responses={201: ("Created", success_of(user, message=True)),
                      409: ("The username is taken", None)}),
        ep("GET", "/api/v1/admin/users/{username}", admin(get_user), "Read a user account",
           admin_tag, "getUser",
           responses={200: ("The user", success_of(user)), 404: ("No such user", None)}),
        ep("DELETE", "/api/v1/admin/users/{username}", admin(delete_user),
           "Delete a user account (revokes its tokens and sessions)", admin_tag, "deleteUser",
           responses={200: ("Deleted", success_of(message=True)), 404: ("No such user", None)}),
        ep("POST", "/api/v1/admin/users/{username}/disable", admin(toggler(True, "User disabled")),
           "Disable a user (revokes its tokens and sessions)", admin_tag, "disableUser",
           responses={200: ("Disabled", success_of(user, message=True)),
                      404: ("No such user", None)}),
        ep("POST", "/api/v1/admin/users/{username}/enable", admin(toggler(False, "User enabled")),
           "Enable a user (and lift a lockout)", admin_tag, "enableUser",
           responses={200: ("Enabled", success_of(user, message=True)),
                      404: ("No such user", None)}),
        ep("POST", "/api/v1/admin/users/{username}/password", admin(set_password),
           "Reset a user's password (revokes its tokens and sessions)", admin_tag,
           "resetUserPassword",
           request=request_obj({"password": password_in}, ["password"]),
           responses={200: ("Reset", success_of(message=True)), 404: ("No such user", None)}),
    ]
    return out

