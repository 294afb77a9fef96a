"""gRPC status codes for what can go wrong in a call.

A handler raises :class:`RpcError` (bad request fields, failed authentication) or gets
a :class:`~tokenginx.errors.CommandError` back from the gate; both end as a status
code with a readable message. Gate errors keep their Redis text (``WRONGTYPE …``,
``LOADING …``) so the same failure reads the same on every door:

=======================================================  ==================
gate error                                               status code
=======================================================  ==================
``NOAUTH``, ``WRONGPASS``                                UNAUTHENTICATED
``NOPERM``                                               PERMISSION_DENIED
``OOM``, ``ERR rate limit …``                            RESOURCE_EXHAUSTED
``LOADING``, ``MISCONF``, ``BUSY``                       UNAVAILABLE
``ERR unknown or expired …`` (SetST's TGT)               NOT_FOUND
``ERR unknown command``, ``ERR … is disabled``           UNIMPLEMENTED
``ERR internal error …``                                 INTERNAL
anything else (``WRONGTYPE``, syntax, values, limits)    INVALID_ARGUMENT
=======================================================  ==================
"""

from __future__ import annotations

import grpc

from tokenginx.errors import CommandError

Code = grpc.StatusCode


class RpcError(Exception):
    """End the call with ``code`` and ``message`` (raised inside a handler)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_argument(field: str, reason: str) -> RpcError:
    """INVALID_ARGUMENT naming the offending request field."""
    return RpcError(Code.INVALID_ARGUMENT, f"{field}: {reason}")


def unauthenticated() -> RpcError:
    return RpcError(
        Code.UNAUTHENTICATED,
        "authentication required: send metadata 'authorization: Bearer <api-key>'",
    )


_BY_PREFIX: dict[str, grpc.StatusCode] = {
    "NOAUTH": Code.UNAUTHENTICATED,
    "WRONGPASS": Code.UNAUTHENTICATED,
    "NOPERM": Code.PERMISSION_DENIED,
    "OOM": Code.RESOURCE_EXHAUSTED,
    "LOADING": Code.UNAVAILABLE,
    "MISCONF": Code.UNAVAILABLE,
    "BUSY": Code.UNAVAILABLE,
}


def status_for(err: CommandError) -> grpc.StatusCode:
    """The status code a gate error maps to (see the module docstring)."""
    prefix = err.prefix
    code = _BY_PREFIX.get(prefix)
    if code is not None:
        return code
    if prefix == "ERR":
        text = err.message[4:]
        if text.startswith("internal error"):
            return Code.INTERNAL
        if "rate limit" in text:
            return Code.RESOURCE_EXHAUSTED
        if text.startswith("unknown or expired"):
            return Code.NOT_FOUND
        if text.startswith("unknown command") or " is disabled" in text:
            return Code.UNIMPLEMENTED
    return Code.INVALID_ARGUMENT


def from_command_error(err: CommandError) -> RpcError:
    """A gate error as an :class:`RpcError`; the Redis text is the message."""
    return RpcError(status_for(err), err.message)


# Errors that concern the whole call rather than one item of a batch: a batch stops at
# the first one instead of counting it as a failed item.
CALL_LEVEL = frozenset({"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MISCONF", "BUSY"})


def is_call_level(err: CommandError) -> bool:
    if err.prefix in CALL_LEVEL:
        return True
    code = status_for(err)
    return code in (Code.INTERNAL, Code.UNIMPLEMENTED) or (
        code is Code.RESOURCE_EXHAUSTED and err.prefix != "OOM"  # rate limited
    )
