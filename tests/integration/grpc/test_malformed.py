"""Bytes that are not a valid request message: INVALID_ARGUMENT, never UNKNOWN."""

from __future__ import annotations

import grpc
import pytest
import redis

from tests.conftest import RunningServer

SERVICE = "/tokenginx.v1.TokenginXService/"
GARBAGE = [b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" * 11, b"\x12\x05abc"]


@pytest.mark.parametrize("data", GARBAGE)
@pytest.mark.parametrize("method", ["Get", "Set", "BatchSet", "IntrospectToken", "SetTGT"])
def test_malformed_unary_request(channel: grpc.Channel, method: str, data: bytes) -> None:
    call = channel.unary_unary(SERVICE + method)
    with pytest.raises(grpc.RpcError) as e:
        call(data, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == (
        f"malformed request: the bytes are not a valid tokenginx.v1.{method}Request message"
    )


@pytest.mark.parametrize("data", GARBAGE)
def test_malformed_stream_request(channel: grpc.Channel, data: bytes) -> None:
    call = channel.unary_stream(SERVICE + "Scan")
    with pytest.raises(grpc.RpcError) as e:
        list(call(data, timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ScanRequest" in e.value.details()


def test_valid_bytes_still_work(channel: grpc.Channel, tokenginx: RunningServer) -> None:
    r = redis.Redis(port=tokenginx.port)
    r.set("raw-key", "raw-value")
    get = channel.unary_unary(SERVICE + "Get")
    reply = get(b"\x0a\x07raw-key", timeout=5)  # GetRequest{key: "raw-key"}
    assert b"raw-value" in reply
    r.delete("raw-key")
