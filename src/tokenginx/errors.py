"""Errors a command can answer with.

Clients map error replies to exception classes by their first word and sometimes by
the exact text (redis-py ``BaseParser.EXCEPTION_CLASSES``), so every message here is
Redis 7's, byte for byte::

    CommandError                      -> "-<PREFIX> <text>" reply, connection stays open
     ├── WrongTypeError               WRONGTYPE
     ├── NoAuthError                  NOAUTH
     ├── WrongPassError               WRONGPASS
     ├── NoPermError                  NOPERM
     ├── NoScriptError                NOSCRIPT
     ├── ExecAbortError               EXECABORT
     └── OutOfMemoryError             OOM
    ProtocolError (transport)         reply then close: the stream cannot be resynced
"""

from __future__ import annotations


class CommandError(Exception):
    """An error reply. ``message`` is the full text after ``-``, prefix included."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def prefix(self) -> str:
        return self.message.split(" ", 1)[0]


class WrongTypeError(CommandError):
    def __init__(self) -> None:
        super().__init__("WRONGTYPE Operation against a key holding the wrong kind of value")


class NoAuthError(CommandError):
    def __init__(self) -> None:
        super().__init__("NOAUTH Authentication required.")


class WrongPassError(CommandError):
    def __init__(self) -> None:
        super().__init__("WRONGPASS invalid username-password pair or user is disabled.")


class NoPermError(CommandError):
    pass


class NoScriptError(CommandError):
    def __init__(self) -> None:
        super().__init__("NOSCRIPT No matching script. Please use EVAL.")


class ExecAbortError(CommandError):
    """EXEC refused: a queued command was rejected, or EXEC itself was (``because``:
    the error that refused it, as Redis's execCommandAbort words it)."""

    def __init__(self, because: CommandError | None = None) -> None:
        if because is None:
            super().__init__("EXECABORT Transaction discarded because of previous errors.")
            return
        text = because.message
        if text.startswith("ERR "):
            text = text[4:]
        super().__init__(f"EXECABORT Transaction discarded because of: {text}")


class BusyScriptError(CommandError):
    """A Lua script ran past the busy threshold: only ``allow_busy`` commands run."""

    def __init__(self) -> None:
        super().__init__(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        )


class OutOfMemoryError(CommandError):
    def __init__(self) -> None:
        super().__init__("OOM command not allowed when used memory > 'maxmemory'.")


class ProtocolError(Exception):
    """The peer broke the wire protocol; reply ``-ERR Protocol error: …`` and close."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Errors shared by many commands. Kept as functions so each raise builds a fresh
# exception (tracebacks must not accumulate on a shared instance).
def syntax_error() -> CommandError:
    return CommandError("ERR syntax error")


def not_integer() -> CommandError:
    return CommandError("ERR value is not an integer or out of range")


def not_float() -> CommandError:
    return CommandError("ERR value is not a valid float")


def wrong_arity(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


def unknown_subcommand(sub: bytes | str, command: str) -> CommandError:
    s = sub.decode("utf-8", "replace") if isinstance(sub, bytes) else sub
    return CommandError(
        f"ERR unknown subcommand '{s}'. Try {command.upper()} HELP."
    )


def no_such_key() -> CommandError:
    return CommandError("ERR no such key")
