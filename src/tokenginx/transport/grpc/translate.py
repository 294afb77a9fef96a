"""Pure translation between proto messages and gate argument vectors / replies.

No I/O and no grpc calls here, so every rule (which field is required, what a TTL of 0
means, how a JSON record becomes a response) is unit-tested on its own.

TTL rules: generic keys (``Set``, ``BatchSet``) take ``ttl_seconds`` 0 as "never
expires" (contract §1.4); the SSO RPCs take 0 as "the protocol's default lifetime"
(the command's ``EXPIRES_IN`` is left out). A negative TTL is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc.errors import invalid_argument

T = TypeVar("T")

DEFAULT_SCAN_COUNT = 100
MAX_SCAN_COUNT = 10_000
CHUNK = 1000  # keys per gate call in batch RPCs; the loop runs other work between chunks


# -- request fields -------------------------------------------------------------------
def required(field: str, value: str) -> bytes:
    """A string field that must not be empty, as the bytes the gate takes."""
    if not value:
        raise invalid_argument(field, "must not be empty")
    return value.encode()


def ttl(field: str, seconds: int) -> int:
    if seconds < 0:
        raise invalid_argument(field, f"must be >= 0, got {seconds}")
    return seconds


def set_argv(key: str, value: bytes, ttl_seconds: int, field: str = "") -> list[bytes]:
    """``SET key value [EX ttl]``; ``field`` prefixes names in errors (``items[3].``)."""
    argv = [b"SET", required(field + "key", key), value]
    if ttl(field + "ttl_seconds", ttl_seconds):
        argv += [b"EX", b"%d" % ttl_seconds]
    return argv


def check_items(items: Sequence[pb.BatchSetRequest.KeyValue], offset: int = 0) -> None:
    """Validate BatchSet items (a cheap pass before any is written)."""
    for i, it in enumerate(items):
        if not it.key or it.ttl_seconds < 0:
            set_argv(it.key, it.value, it.ttl_seconds, f"items[{offset + i}].")  # raises


def key_list(keys: Sequence[str]) -> list[str]:
    """The keys of a batch RPC, refused as a whole if any is empty."""
    keys = list(keys)
    if "" in keys:
        raise invalid_argument(f"keys[{keys.index('')}]", "must not be empty")
    return keys


def keys_argv(command: bytes, keys: Sequence[str]) -> list[bytes]:
    """``command k1 k2 …`` (MGET, DEL) for one chunk of checked keys."""
    return [command, *(key.encode() for key in keys)]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[tuple[int, Sequence[T]]]:
    """``(offset, slice)`` pairs covering ``items``."""
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def scan_count(count: int) -> int:
    """The batch size of a Scan: 0 = the default, capped so one step stays short."""
    if count < 0:
        raise invalid_argument("count", f"must be >= 0, got {count}")
    return min(count or DEFAULT_SCAN_COUNT, MAX_SCAN_COUNT)


def scan_argv(cursor: bytes, pattern: str, count: int) -> list[bytes]:
    argv = [b"SCAN", cursor]
    if pattern and pattern != "*":
        argv += [b"MATCH", pattern.encode()]
    argv += [b"COUNT", b"%d" % count]
    return argv


def _expires_in(argv: list[bytes], field: str, seconds: int) -> None:
    if ttl(field, seconds):
        argv += [b"EXPIRES_IN", b"%d" % seconds]


def _json_option(argv: list[bytes], name: bytes, mapping: Mapping[str, str]) -> None:
    if mapping:
        argv += [name, orjson.dumps(dict(mapping))]


def oauth_token_set_argv(req: pb.SetOAuthTokenRequest) -> list[bytes]:
    argv = [
        b"OAUTH.TOKEN.SET",
        required("token_id", req.token_id),
        req.user_id.encode(),  # "" for client-credentials tokens
        req.scope.encode(),
    ]
    _expires_in(argv, "ttl_seconds", req.ttl_seconds)
    if req.client_id:
        argv += [b"CLIENT_ID", req.client_id.encode()]
    _json_option(argv, b"METADATA", req.metadata)
    return argv


def token_argv(
    command: bytes, req: pb.IntrospectTokenRequest | pb.RevokeTokenRequest
) -> list[bytes]:
    """``OAUTH.TOKEN.INTROSPECT|REVOKE token [TOKEN_TYPE_HINT h]``."""
    argv = [command, required("token", req.token)]
    if req.token_type_hint:
        argv += [b"TOKEN_TYPE_HINT", req.token_type_hint.encode()]
    return argv


def saml_session_set_argv(req: pb.SetSAMLSessionRequest) -> list[bytes]:
    # The session record is JSON text, so the assertion must be text (it is base64 in
    # practice, contract §4.1); other bytes would not read back unchanged.
    try:
        req.assertion.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_argument("assertion", "must be UTF-8 text (base64 of the XML)") from None
    argv = [
        b"SAML.SESSION.SET",
        required("session_index", req.session_index),
        required("name_id", req.name_id),
        req.assertion,
    ]
    _expires_in(argv, "ttl_seconds", req.ttl_seconds)
    if req.name_id_format:
        argv += [b"NAME_ID_FORMAT", req.name_id_format.encode()]
    _json_option(argv, b"ATTRIBUTES", req.attributes)
    return argv


def tgt_set_argv(req: pb.SetTGTRequest) -> list[bytes]:
    argv = [b"CAS.TGT.SET", required("tgt_id", req.tgt_id), required("user_id", req.user_id)]
    _expires_in(argv, "ttl_seconds", req.ttl_seconds)
    _json_option(argv, b"ATTRIBUTES", req.attributes)
    return argv


def st_set_argv(req: pb.SetSTRequest) -> list[bytes]:
    argv = [
        b"CAS.ST.SET",
        required("st_id", req.st_id),
        required("tgt_id", req.tgt_id),
        required("service", req.service),
    ]
    _expires_in(argv, "ttl_seconds", req.ttl_seconds)
    return argv


def st_validate_argv(req: pb.ValidateSTRequest) -> list[bytes]:
    return [b"CAS.ST.VALIDATE", required("st_id", req.st_id), required("service", req.service)]


# -- replies --------------------------------------------------------------------------
def ttl_from_pttl(pttl: int) -> int:
    """PTTL in ms to seconds the way ``TTL`` rounds (Redis: ``(ms + 500) / 1000``);
    -1 (no expiry) and -2 (missing) pass through."""
    return pttl if pttl < 0 else (pttl + 500) // 1000


def text(value: Any) -> str:
    """A JSON field as a proto string: None is "", non-strings become compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def integer(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def str_map(value: Any) -> dict[str, str]:
    """A JSON object as ``map<string, string>`` (non-string values as JSON text)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): text(v) for k, v in value.items()}


def record(reply: bytes) -> dict[str, Any]:
    """A JSON-object reply of a Variant B command."""
    data = orjson.loads(reply)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def oauth_token_response(reply: bytes | None) -> pb.GetOAuthTokenResponse:
    if reply is None:
        return pb.GetOAuthTokenResponse(found=False)
    r = record(reply)
    return pb.GetOAuthTokenResponse(
        found=True,
        user_id=text(r.get("user_id")),
        scope=text(r.get("scope")),
        client_id=text(r.get("client_id")),
        created_at=integer(r.get("created_at")),
        expires_at=integer(r.get("expires_at")),
        metadata=str_map(r.get("metadata")),
    )


def introspection_response(reply: bytes) -> pb.IntrospectTokenResponse:
    r = record(reply)
    if r.get("active") is not True:
        return pb.IntrospectTokenResponse(active=False)
    return pb.IntrospectTokenResponse(
        active=True,
        scope=text(r.get("scope")),
        client_id=text(r.get("client_id")),
        username=text(r.get("username")),
        token_type=text(r.get("token_type")),
        exp=integer(r.get("exp")),
        iat=integer(r.get("iat")),
        sub=text(r.get("sub")),
    )


def saml_session_response(reply: bytes | None) -> pb.GetSAMLSessionResponse:
    if reply is None:
        return pb.GetSAMLSessionResponse(found=False)
    r = record(reply)
    return pb.GetSAMLSessionResponse(
        found=True,
        name_id=text(r.get("name_id")),
        name_id_format=text(r.get("name_id_format")),
        assertion=text(r.get("assertion")).encode(),
        created_at=integer(r.get("created_at")),
        expires_at=integer(r.get("expires_at")),
        attributes=str_map(r.get("attributes")),
    )


def st_validation_response(reply: bytes) -> pb.ValidateSTResponse:
    r = record(reply)
    if r.get("valid") is not True:
        return pb.ValidateSTResponse(valid=False)
    return pb.ValidateSTResponse(
        valid=True, user_id=text(r.get("user_id")), attributes=str_map(r.get("attributes"))
    )


INT32_MAX = 2**31 - 1


def stats_response(snapshot: Mapping[str, int]) -> pb.GetStatsResponse:
    return pb.GetStatsResponse(
        total_keys=snapshot["total_keys"],
        memory_used_bytes=snapshot["memory_used_bytes"],
        total_commands_processed=snapshot["total_commands_processed"],
        instantaneous_ops_per_sec=min(snapshot["instantaneous_ops_per_sec"], INT32_MAX),
        connected_clients=min(snapshot["connected_clients"], INT32_MAX),
        uptime_seconds=snapshot["uptime_seconds"],
    )


def peer_addr(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` → ``127.0.0.1:5000`` (CLIENT LIST's ``addr``)."""
    scheme, sep, rest = peer.partition(":")
    return rest if sep and scheme in ("ipv4", "ipv6", "unix") else peer
