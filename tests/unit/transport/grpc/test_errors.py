"""Gate error → gRPC status code."""

from __future__ import annotations

import grpc
import pytest

from tokenginx.errors import (
    CommandError,
    NoAuthError,
    NoPermError,
    OutOfMemoryError,
    WrongPassError,
    WrongTypeError,
    not_integer,
    syntax_error,
)
from tokenginx.gate.gate import LOADING
from tokenginx.transport.grpc.errors import from_command_error, is_call_level, status_for

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WrongTypeError(), C.INVALID_ARGUMENT),
        (syntax_error(), C.INVALID_ARGUMENT),
        (not_integer(), C.INVALID_ARGUMENT),
        (CommandError("ERR invalid expire time in 'set' command"), C.INVALID_ARGUMENT),
        (CommandError("ERR key is too large (max 100 bytes)"), C.INVALID_ARGUMENT),
        (NoAuthError(), C.UNAUTHENTICATED),
        (WrongPassError(), C.UNAUTHENTICATED),
        (
            NoPermError("NOPERM User alice has no permissions to run the 'get' command"),
            C.PERMISSION_DENIED,
        ),
        (OutOfMemoryError(), C.RESOURCE_EXHAUSTED),
        (CommandError("ERR rate limit exceeded, retry in 120 ms"), C.RESOURCE_EXHAUSTED),
        (LOADING, C.UNAVAILABLE),
        (CommandError("MISCONF Errors writing to the AOF file: disk full"), C.UNAVAILABLE),
        (CommandError("BUSY Redis is busy running a script."), C.UNAVAILABLE),
        (CommandError("ERR unknown or expired TGT"), C.NOT_FOUND),
        (CommandError("ERR unknown or expired PGT"), C.NOT_FOUND),
        (CommandError("ERR OAuth support is disabled (protocols.oauth.enabled)"), C.UNIMPLEMENTED),
        (
            CommandError("ERR unknown command 'OAUTH.TOKEN.SET', with args beginning with: "),
            C.UNIMPLEMENTED,
        ),
        (CommandError("ERR internal error while running 'get'"), C.INTERNAL),
    ],
)
def test_status_for(error: CommandError, code: grpc.StatusCode) -> None:
    assert status_for(error) == code
    rpc_error = from_command_error(error)
    assert (rpc_error.code, rpc_error.message) == (code, error.message)  # the Redis text is kept


def test_call_level_errors_stop_a_batch_others_count_as_failed_items() -> None:
    for err in (
        NoAuthError(),
        WrongPassError(),
        NoPermError("NOPERM x"),
        LOADING,
        CommandError("MISCONF x"),
        CommandError("ERR rate limit exceeded"),
        CommandError("ERR internal error while running 'set'"),
        CommandError("ERR CAS support is disabled (protocols.cas.enabled)"),
    ):
        assert is_call_level(err), err.message
    for err in (
        OutOfMemoryError(),
        WrongTypeError(),
        CommandError("ERR key is too large (max 1 bytes)"),
        CommandError("ERR string exceeds maximum allowed size (16 bytes)"),
    ):
        assert not is_call_level(err), err.message
