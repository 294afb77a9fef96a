"""One SSO vocabulary over every door, for tests that must hold whichever door is used.

:class:`SSODoor` has one method per domain operation; each door (RESP commands here,
HTTP and gRPC alongside) implements it by speaking its own protocol to a running
server. The suite in ``test_sso_doors.py`` is parametrized over :data:`DOORS`, so a
door is added by writing its adapter and registering it there.

Conventions every adapter follows, so that results compare equal across doors:

* records come back as the JSON objects of docs/sso-commands.md, with ``created_at``
  and ``expires_at`` as integer Unix seconds (or None) — an adapter converts its
  door's representation (HTTP shows RFC 3339 text) back;
* "not found" is None (reads) or 0/False (deletes), never an exception;
* a request the server refuses (e.g. an ST for an unknown TGT) raises
  :class:`DoorRefused`.

Each adapter owns its connections; one adapter per thread in concurrency tests
(``make_door()`` twice), and ``close()`` when done.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from tests.conftest import RunningServer


class DoorRefused(Exception):
    """The server refused the request (an error reply, a 4xx, a gRPC error status)."""


class SSODoor(ABC):
    name: str

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- OAuth ----------------------------------------------------------------------
    @abstractmethod
    def set_token(self, token_id: str, user_id: str, scope: str, *, expires_in: int | None = None,
                  refresh_token: str | None = None, client_id: str | None = None,
                  token_type: str | None = None, metadata: dict[str, str] | None = None) -> None: ...

    @abstractmethod
    def get_token(self, token_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def introspect(self, token: str, hint: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def revoke(self, token: str, hint: str | None = None, cascade: bool = False) -> int:
        """The number of tokens revoked (0 for an unknown token)."""

    @abstractmethod
    def set_code(self, code: str, client_id: str, redirect_uri: str, user_id: str, scope: str, *,
                 expires_in: int | None = None, code_challenge: str | None = None,
                 code_challenge_method: str | None = None) -> None: ...

    @abstractmethod
    def consume_code(self, code: str) -> dict[str, Any] | None: ...

    # -- users ----------------------------------------------------------------------
    @abstractmethod
    def list_user_sessions(self, user_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def revoke_user(self, user_id: str) -> int: ...

    # -- SAML -----------------------------------------------------------------------
    @abstractmethod
    def set_saml_session(self, session_index: str, name_id: str, assertion: str, *,
                         expires_in: int | None = None, name_id_format: str | None = None,
                         attributes: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def get_saml_session(self, session_index: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list_saml_sessions(self, name_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def del_saml_session(self, session_index: str) -> bool: ...

    # -- CAS ------------------------------------------------------------------------
    @abstractmethod
    def set_tgt(self, tgt_id: str, user_id: str, *, expires_in: int | None = None,
                attributes: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def get_tgt(self, tgt_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def del_tgt(self, tgt_id: str) -> bool: ...

    @abstractmethod
    def set_st(self, st_id: str, tgt_id: str, service: str, *,
               expires_in: int | None = None) -> None: ...

    @abstractmethod
    def validate_st(self, st_id: str, service: str) -> dict[str, Any]: ...


# -- RESP ---------------------------------------------------------------------------------
def _opts(**pairs: Any) -> list[Any]:
    """``NAME value`` pairs for the options that are set (dicts as JSON)."""
    out: list[Any] = []
    for name, value in pairs.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        out += [name.upper(), value]
    return out


def _json(reply: Any) -> Any:
    return None if reply is None else json.loads(reply)


class RespDoor(SSODoor):
    """The extension commands over the Redis protocol, with redis-py."""

    name = "resp"

    def __init__(self, server: RunningServer) -> None:
        self.r = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)

    def close(self) -> None:
        self.r.close()

    def _call(self, *args: Any) -> Any:
        try:
            return self.r.execute_command(*args)
        except redis.ResponseError as e:
            raise DoorRefused(str(e)) from None

    def set_token(self, token_id, user_id, scope, *, expires_in=None, refresh_token=None,
                  client_id=None, token_type=None, metadata=None):
        self._call("OAUTH.TOKEN.SET", token_id, user_id, scope, *_opts(
            expires_in=expires_in, refresh_token=refresh_token, client_id=client_id,
            token_type=token_type, metadata=metadata))

    def get_token(self, token_id):
        return _json(self._call("OAUTH.TOKEN.GET", token_id))

    def introspect(self, token, hint=None):
        return _json(self._call("OAUTH.TOKEN.INTROSPECT", token, *_opts(token_type_hint=hint)))

    def revoke(self, token, hint=None, cascade=False):
        extra = ["CASCADE"] if cascade else []
        return self._call("OAUTH.TOKEN.REVOKE", token, *_opts(token_type_hint=hint), *extra)

    def set_code(self, code, client_id, redirect_uri, user_id, scope, *, expires_in=None,
                 code_challenge=None, code_challenge_method=None):
        self._call("OAUTH.CODE.SET", code, client_id, redirect_uri, user_id, scope, *_opts(
            expires_in=expires_in, code_challenge=code_challenge,
            code_challenge_method=code_challenge_method))

    def consume_code(self, code):
        return _json(self._call("OAUTH.CODE.CONSUME", code))

    def list_user_sessions(self, user_id):
        return _json(self._call("SSO.USER.SESSIONS", user_id))

    def revoke_user(self, user_id):
        return self._call("SSO.USER.REVOKE", user_id)

    def set_saml_session(self, session_index, name_id, assertion, *, expires_in=None,
                         name_id_format=None, attributes=None):
        self._call("SAML.SESSION.SET", session_index, name_id, assertion, *_opts(
            expires_in=expires_in, name_id_format=name_id_format, attributes=attributes))

    def get_saml_session(self, session_index):
        return _json(self._call("SAML.SESSION.GET", session_index))

    def list_saml_sessions(self, name_id):
        return _json(self._call("SAML.SESSION.LIST", name_id))

    def del_saml_session(self, session_index):
        return self._call("SAML.SESSION.DEL", session_index) == 1

    def set_tgt(self, tgt_id, user_id, *, expires_in=None, attributes=None):
        self._call("CAS.TGT.SET", tgt_id, user_id, *_opts(expires_in=expires_in, attributes=attributes))

    def get_tgt(self, tgt_id):
        return _json(self._call("CAS.TGT.GET", tgt_id))

    def del_tgt(self, tgt_id):
        return self._call("CAS.TGT.DEL", tgt_id) == 1

    def set_st(self, st_id, tgt_id, service, *, expires_in=None):
        self._call("CAS.ST.SET", st_id, tgt_id, service, *_opts(expires_in=expires_in))

    def validate_st(self, st_id, service):
        return _json(self._call("CAS.ST.VALIDATE", st_id, service))


def _epoch(record: Any) -> Any:
    """HTTP shows times as RFC 3339; the other doors as Unix seconds. Compare as seconds."""
    if isinstance(record, list):
        return [_epoch(r) for r in record]
    if isinstance(record, dict):
        for name in ("created_at", "expires_at"):
            value = record.get(name)
            if isinstance(value, str):
                record[name] = int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    return record


class HttpDoor(SSODoor):
    """The REST endpoints of contract §3.5–3.7 (and the user endpoints), with httpx."""

    name = "http"

    def __init__(self, server: RunningServer) -> None:
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}/api/v1", timeout=10)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              missing_ok: bool = False) -> Any:
        from urllib.parse import quote

        path = "/".join(quote(part, safe="") for part in path.split("/"))  # ids may hold '/'
        resp = self.http.request(method, path, json=body)
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code >= 400:
            raise DoorRefused(f"{resp.status_code}: {resp.text}")
        return resp.json()

    @staticmethod
    def _body(**fields: Any) -> dict[str, Any]:
        return {k: v for k, v in fields.items() if v is not None}

    def set_token(self, token_id, user_id, scope, *, expires_in=None, refresh_token=None,
                  client_id=None, token_type=None, metadata=None):
        self._call("POST", "oauth/tokens", self._body(
            access_token=token_id, user_id=user_id, scope=scope, expires_in=expires_in,
            refresh_token=refresh_token, client_id=client_id, token_type=token_type, metadata=metadata))

    def get_token(self, token_id):
        reply = self._call("GET", f"oauth/tokens/{token_id}", missing_ok=True)
        return None if reply is None else _epoch(reply["data"])

    def introspect(self, token, hint=None):
        return self._call("POST", "oauth/introspect", self._body(token=token, token_type_hint=hint))

    def revoke(self, token, hint=None, cascade=False):
        body = self._body(token=token, token_type_hint=hint, cascade=True if cascade else None)
        return self._call("POST", "oauth/revoke", body)["data"]["revoked"]

    def set_code(self, code, client_id, redirect_uri, user_id, scope, *, expires_in=None,
                 code_challenge=None, code_challenge_method=None):
        self._call("POST", "oauth/codes", self._body(
            code=code, client_id=client_id, redirect_uri=redirect_uri, user_id=user_id, scope=scope,
            expires_in=expires_in, code_challenge=code_challenge, code_challenge_method=code_challenge_method))

    def consume_code(self, code):
        reply = self._call("POST", f"oauth/codes/{code}/consume", missing_ok=True)
        return None if reply is None else _epoch(reply["data"])

    def list_user_sessions(self, user_id):
        return _epoch(self._call("GET", f"users/{user_id}/sessions")["data"])

    def revoke_user(self, user_id):
        return self._call("DELETE", f"users/{user_id}/sessions")["data"]["revoked"]

    def set_saml_session(self, session_index, name_id, assertion, *, expires_in=None,
                         name_id_format=None, attributes=None):
        self._call("POST", "saml/sessions", self._body(
            session_index=session_index, name_id=name_id, assertion=assertion, expires_in=expires_in,
            name_id_format=name_id_format, attributes=attributes))

    def get_saml_session(self, session_index):
        reply = self._call("GET", f"saml/sessions/{session_index}", missing_ok=True)
        return None if reply is None else _epoch(reply["data"])

    def list_saml_sessions(self, name_id):
        return _epoch(self._call("GET", f"saml/name-ids/{name_id}/sessions")["data"])

    def del_saml_session(self, session_index):
        return self._call("DELETE", f"saml/sessions/{session_index}", missing_ok=True) is not None

    def set_tgt(self, tgt_id, user_id, *, expires_in=None, attributes=None):
        self._call("POST", "cas/tgts", self._body(tgt_id=tgt_id, user_id=user_id,
                                                  expires_in=expires_in, attributes=attributes))

    def get_tgt(self, tgt_id):
        reply = self._call("GET", f"cas/tgts/{tgt_id}", missing_ok=True)
        return None if reply is None else _epoch(reply["data"])

    def del_tgt(self, tgt_id):
        return self._call("DELETE", f"cas/tgts/{tgt_id}", missing_ok=True) is not None

    def set_st(self, st_id, tgt_id, service, *, expires_in=None):
        try:
            self._call("POST", "cas/sts", self._body(st_id=st_id, tgt_id=tgt_id, service=service,
                                                     expires_in=expires_in))
        except DoorRefused as e:
            raise DoorRefused(str(e).replace("TGT not found (unknown or expired)", "unknown or expired TGT")) from None

    def validate_st(self, st_id, service):
        return self._call("POST", "cas/validate", {"st_id": st_id, "service": service})["data"]


# The doors the cross-door suite runs over: name -> adapter factory.
DOORS: dict[str, Callable[[RunningServer], SSODoor]] = {"resp": RespDoor, "http": HttpDoor}


# -- seed 000's OAuth2TokenStore, run unchanged ----------------------------------------------
SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seeds" / "000_20c8f07ac90adcd1.txt"


def oauth2_token_store_sample() -> str:
    """The seed's ```python block that defines ``OAuth2TokenStore``, verbatim."""
    blocks = re.findall(r"^```python\n(.*?)^```", SEED.read_text("utf-8"), re.S | re.M)
    found = [b for b in blocks if "class OAuth2TokenStore" in b]
    assert len(found) == 1, f"{len(found)} blocks define OAuth2TokenStore"
    return found[0]


@contextlib.contextmanager
def redis_redirected(port: int) -> Iterator[None]:
    """Make ``redis.Redis(host='localhost', port=6380)`` — what the sample hard-codes —
    reach the test server instead, without editing the sample."""
    original = redis.Redis

    class Redirected(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(host="127.0.0.1", port=port)
            super().__init__(*args, **kwargs)

    redis.Redis = Redirected  # type: ignore[misc]
    try:
        yield
    finally:
        redis.Redis = original  # type: ignore[misc]


def run_oauth2_token_store_sample(port: int) -> dict[str, Any]:
    """Execute the whole sample (class and usage) against ``port``; its globals.

    ``store`` in the result is the sample's own ``OAuth2TokenStore`` instance, still
    connected to the test server; the caller closes ``store.client``. The sample
    calls ``Redis.setex``, which redis-py 8 deprecates: callers ignore that warning
    (``filterwarnings("ignore:Call to deprecated:DeprecationWarning")``).
    """
    namespace: dict[str, Any] = {"__name__": "seed000_oauth2_store"}
    with redis_redirected(port):
        exec(compile(oauth2_token_store_sample(), "<seed 000: OAuth2TokenStore>", "exec"), namespace)
    return namespace


# -- gRPC ---------------------------------------------------------------------------------
class GrpcDoor(SSODoor):
    """The OAuth, SAML and CAS RPCs of ``tokenginx.v1.TokenginXService``, with a client
    generated from the shipped proto (tests/integration/grpc/stubs.py).

    The proto (contract §4.1) covers only part of this vocabulary, so this adapter is not
    in :data:`DOORS`: operations without an RPC (codes, user sessions, SAML list/delete,
    TGT read/delete, revocation counts) and options without a field (``refresh_token``,
    ``token_type``, non-string attribute values) raise ``NotImplementedError``. Records
    carry the fields the responses have: ``get_token`` has no ``token_type`` or
    ``refresh_token``, ``validate_st`` no ``service``/``code``/``message``, and
    introspection leaves out ``username``/``sub`` when they are empty.
    """

    name = "grpc"

    def __init__(self, server: RunningServer) -> None:
        from tests.integration.grpc.stubs import client_stubs, connect

        stubs = client_stubs()
        self.pb = stubs.pb
        self.channel = connect(server.grpc_port)
        self.stub = stubs.pb_grpc.TokenginXServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, rpc: Callable[..., Any], request: Any) -> Any:
        import grpc

        try:
            return rpc(request, timeout=10)
        except grpc.RpcError as e:
            raise DoorRefused(f"{e.code().name}: {e.details()}") from None

    @staticmethod
    def _missing(what: str) -> NotImplementedError:
        return NotImplementedError(f"the gRPC proto (contract §4.1) has no {what}")

    @classmethod
    def _strings(cls, mapping: dict[str, Any] | None) -> dict[str, str]:
        if mapping and any(not isinstance(v, str) for v in mapping.values()):
            raise cls._missing("map value other than a string")
        return dict(mapping or {})

    # -- OAuth ------------------------------------------------------------------------
    def set_token(self, token_id, user_id, scope, *, expires_in=None, refresh_token=None,
                  client_id=None, token_type=None, metadata=None):
        if refresh_token is not None or token_type is not None:
            raise self._missing("refresh_token or token_type field in SetOAuthTokenRequest")
        self._call(self.stub.SetOAuthToken, self.pb.SetOAuthTokenRequest(
            token_id=token_id, user_id=user_id, scope=scope, client_id=client_id or "",
            ttl_seconds=expires_in or 0, metadata=metadata or {}))

    def get_token(self, token_id):
        got = self._call(self.stub.GetOAuthToken, self.pb.GetOAuthTokenRequest(token_id=token_id))
        if not got.found:
            return None
        return {"token_id": token_id, "user_id": got.user_id, "client_id": got.client_id,
                "scope": got.scope, "metadata": dict(got.metadata),
                "created_at": got.created_at, "expires_at": got.expires_at}

    def introspect(self, token, hint=None):
        got = self._call(self.stub.IntrospectToken, self.pb.IntrospectTokenRequest(
            token=token, token_type_hint=hint or ""))
        if not got.active:
            return {"active": False}
        info = {"active": True, "scope": got.scope, "client_id": got.client_id,
                "username": got.username, "sub": got.sub, "token_type": got.token_type,
                "exp": got.exp, "iat": got.iat}
        return {k: v for k, v in info.items() if v != "" or k not in ("username", "sub")}

    def revoke(self, token, hint=None, cascade=False):
        raise self._missing("revocation count (RevokeTokenResponse has only success)")

    def set_code(self, code, client_id, redirect_uri, user_id, scope, *, expires_in=None,
                 code_challenge=None, code_challenge_method=None):
        raise self._missing("RPC for authorization codes")

    def consume_code(self, code):
        raise self._missing("RPC for authorization codes")

    def list_user_sessions(self, user_id):
        raise self._missing("RPC listing a user's sessions")

    def revoke_user(self, user_id):
        raise self._missing("RPC revoking a user's sessions")

    # -- SAML -------------------------------------------------------------------------
    def set_saml_session(self, session_index, name_id, assertion, *, expires_in=None,
                         name_id_format=None, attributes=None):
        self._call(self.stub.SetSAMLSession, self.pb.SetSAMLSessionRequest(
            session_index=session_index, name_id=name_id, assertion=assertion.encode(),
            name_id_format=name_id_format or "", ttl_seconds=expires_in or 0,
            attributes=self._strings(attributes)))

    def get_saml_session(self, session_index):
        got = self._call(self.stub.GetSAMLSession,
                         self.pb.GetSAMLSessionRequest(session_index=session_index))
        if not got.found:
            return None
        return {"session_index": session_index, "name_id": got.name_id,
                "name_id_format": got.name_id_format, "assertion": got.assertion.decode(),
                "attributes": dict(got.attributes), "created_at": got.created_at,
                "expires_at": got.expires_at}

    def list_saml_sessions(self, name_id):
        raise self._missing("RPC listing SAML sessions")

    def del_saml_session(self, session_index):
        raise self._missing("RPC deleting a SAML session")

    # -- CAS --------------------------------------------------------------------------
    def set_tgt(self, tgt_id, user_id, *, expires_in=None, attributes=None):
        self._call(self.stub.SetTGT, self.pb.SetTGTRequest(
            tgt_id=tgt_id, user_id=user_id, ttl_seconds=expires_in or 0,
            attributes=self._strings(attributes)))

    def get_tgt(self, tgt_id):
        raise self._missing("RPC reading a TGT")

    def del_tgt(self, tgt_id):
        raise self._missing("RPC deleting a TGT")

    def set_st(self, st_id, tgt_id, service, *, expires_in=None):
        self._call(self.stub.SetST, self.pb.SetSTRequest(
            st_id=st_id, tgt_id=tgt_id, service=service, ttl_seconds=expires_in or 0))

    def validate_st(self, st_id, service):
        got = self._call(self.stub.ValidateST, self.pb.ValidateSTRequest(st_id=st_id, service=service))
        if not got.valid:
            return {"valid": False}
        return {"valid": True, "user_id": got.user_id, "attributes": dict(got.attributes)}
