"""The gRPC SSO adapter (sso_doors.GrpcDoor) agrees with the RESP one.

Only the operations the proto has are compared; the adapter refuses the others with
NotImplementedError, which the last test pins down so the gap stays visible.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.sso_doors import DoorRefused, GrpcDoor, RespDoor, SSODoor

APP = "https://app.example.com"
PAIRS = list(itertools.product(["resp", "grpc"], repeat=2))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def doors(tokenginx) -> Iterator[dict[str, SSODoor]]:
    made = {"resp": RespDoor(tokenginx), "grpc": GrpcDoor(tokenginx)}
    yield made
    for door in made.values():
        door.close()


def _shared(record: dict | None, fields: tuple[str, ...]) -> dict | None:
    return None if record is None else {k: record[k] for k in fields}


@pytest.mark.parametrize(("writer", "reader"), PAIRS)
def test_written_through_one_door_read_through_the_other(doors, writer, reader):
    w, r = doors[writer], doors[reader]
    at, user, idx, tgt, st = uid("at"), uid("user"), uid("idx"), uid("TGT"), uid("ST")
    w.set_token(
        at, user, "openid email", expires_in=300, client_id="app", metadata={"ip": "10.0.0.1"}
    )
    w.set_saml_session(
        idx,
        user,
        "PHNhbWw+",
        expires_in=600,
        name_id_format="fmt",
        attributes={"mail": "a@example.com"},
    )
    w.set_tgt(tgt, user, attributes={"mail": "a@example.com"})
    w.set_st(st, tgt, APP)
    assert r.introspect(at) == w.introspect(at)
    assert r.introspect(at)["sub"] == user
    token_fields = (
        "token_id",
        "user_id",
        "client_id",
        "scope",
        "metadata",
        "created_at",
        "expires_at",
    )
    assert _shared(r.get_token(at), token_fields) == _shared(w.get_token(at), token_fields)
    assert r.get_saml_session(idx) == w.get_saml_session(idx)
    assert r.get_saml_session(idx)["attributes"] == {"mail": "a@example.com"}
    validated = r.validate_st(st, APP)
    assert (validated["valid"], validated["user_id"], validated["attributes"]) == (
        True,
        user,
        {"mail": "a@example.com"},
    )
    assert w.validate_st(st, APP)["valid"] is False  # consumed, whichever door validated
    with pytest.raises(DoorRefused):
        w.set_st(uid("ST"), uid("TGT"), APP)


def test_what_the_proto_cannot_express_is_refused_not_faked(doors):
    grpc_door = doors["grpc"]
    for call in (
        lambda: grpc_door.revoke("t"),
        lambda: grpc_door.consume_code("c"),
        lambda: grpc_door.list_user_sessions("u"),
        lambda: grpc_door.get_tgt("T"),
        lambda: grpc_door.set_token("t", "u", "s", refresh_token="rt"),
        lambda: grpc_door.set_tgt("T", "u", attributes={"groups": ["a"]}),
    ):
        with pytest.raises(NotImplementedError, match="gRPC proto"):
            call()
