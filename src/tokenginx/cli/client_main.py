"""``tokenginx-client``: a redis-cli-like command-line client for TokenginX.

::

    tokenginx-client [options] CMD [ARG ...]    one command, printed like redis-cli does
    tokenginx-client [options] -c "GET key"     the same, the command as one quoted string
    tokenginx-client [options] -f FILE|-        one command per line (blank and # lines skipped)
    tokenginx-client [options]                  interactive REPL (``tokenginx host:port>``)
    tokenginx-client ping | info [section] | stats

Exit status: 0 on success, 1 when the server answered with an error reply, 2 when
the server cannot be reached (or the command line is wrong).

Requests go out as multibulk frames built by our own encoder; replies are parsed with
``hiredis.Reader``. hiredis hands back plain Python values and so forgets a few wire
types that redis-cli shows differently (``+OK`` and ``$2 OK`` both become ``b"OK"``;
a RESP3 set becomes a ``list``, a verbatim string ``bytes``). :class:`ReplyReader`
restores them by walking each reply's bytes alongside hiredis's value.

Formatting is pure (:func:`format_reply`, :func:`format_stats`) and follows
redis-cli 7's ``cliFormatReplyTTY``/``cliFormatReplyRaw`` byte for byte. Unlike
redis-cli, output stays human-readable when stdout is not a terminal (the contract has
``-c "GET key"`` answer ``"value"``); ``--raw`` asks for raw values.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import hiredis

from tokenginx.errors import CommandError, ProtocolError
from tokenginx.replies import NULL_ARRAY, Push, Replies, Status, Verbatim
from tokenginx.transport.resp.encoder import encode_resp2
from tokenginx.transport.resp.parser import split_inline
from tokenginx.version import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6380
EXIT_OK = 0
EXIT_REPLY_ERROR = 1
EXIT_UNREACHABLE = 2
EXIT_USAGE = 2

PROG = "tokenginx-client"


# -- value model --------------------------------------------------------------------------
# Besides what hiredis returns (bytes, int, float, bool, None, list, dict, ReplyError,
# PushNotification) and the server's own reply model (tokenginx.replies: Status,
# Verbatim, Push, NULL_ARRAY, set, CommandError), two wire types need a class here.


class RespSet(list[Any]):
    """A RESP3 set ``~``, kept in wire order (a Python ``set`` would lose it)."""

    __slots__ = ()


class BigNumber(bytes):
    """A RESP3 big number ``(``: hiredis returns its digits as ``bytes``."""

    __slots__ = ()


class Double(float):
    """A RESP3 double with the text the server sent (``0.10000000000000001``)."""

    text: str

    def __new__(cls, value: float, text: str) -> Double:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


NEED_DATA: Any = object()  # what ReplyReader.gets returns until a whole reply is buffered


class ReplyReader:
    """Sans-IO reply parser: ``feed(bytes)``, then ``gets()`` until :data:`NEED_DATA`.

    hiredis parses. It maps ``+OK`` and ``$2 OK`` both to ``b"OK"``, a set to a
    ``list``, a verbatim string to ``bytes``, so for each reply this class walks the
    reply's bytes alongside hiredis's value and re-labels what hiredis flattened
    (:class:`~tokenginx.replies.Status`, :class:`~tokenginx.replies.Verbatim`,
    :class:`RespSet`, :class:`BigNumber`, :class:`Double`). The walk also says where
    the next reply starts. Past ``max_relabel`` buffered bytes the copy is dropped and
    values keep hiredis's types until the stream is back at a reply boundary.
    """

    __slots__ = ("_reader", "_buf", "_synced", "max_relabel")

    def __init__(self, max_relabel: int = 1 << 20) -> None:
        # notEnoughData: hiredis's default marker is False, which is also RESP3's #f.
        self._reader = hiredis.Reader(notEnoughData=NEED_DATA)
        self._buf = bytearray()  # bytes of the replies hiredis has not returned yet
        self._synced = True  # _buf starts at a reply boundary
        self.max_relabel = max_relabel

    def feed(self, data: bytes) -> None:
        self._reader.feed(data)
        if self._synced:
            if len(self._buf) + len(data) > self.max_relabel:
                self._synced = False
                self._buf = bytearray()
            else:
                self._buf += data

    def gets(self) -> Any:
        """The next reply, :data:`NEED_DATA`, or raise :class:`ProtocolError`."""
        while True:
            try:
                value = self._reader.gets()
            except hiredis.ProtocolError as e:
                raise ProtocolError(str(e)) from None  # "Protocol error, got ..."
            except TypeError as e:
                # hiredis builds a dict for a RESP3 map and fails on an aggregate key;
                # its buffer is unusable afterwards.
                raise ProtocolError(f"Protocol error: cannot decode reply ({e})") from None
            if value is NEED_DATA:
                return NEED_DATA
            attribute = False
            if self._synced:
                attribute = self._buf[:1] == b"|"
                try:
                    value, end = _relabel(value, self._buf, 0)
                except (ValueError, IndexError, _Mismatch):
                    self._synced, self._buf = False, bytearray()
                else:
                    del self._buf[:end]
            if not self._synced and not self._reader.has_data():
                self._synced = True  # nothing buffered: the next byte starts a reply
            if not attribute:
                return value
            # A RESP3 attribute (|) is metadata about the reply that follows; hiredis
            # returns it as a reply of its own.


class _Mismatch(Exception):
    pass


def _relabel(value: Any, buf: bytearray, pos: int) -> tuple[Any, int]:
    """``value`` with the wire types hiredis dropped, and where its frame ends."""
    t = buf[pos]
    eol = buf.index(b"\r\n", pos)
    head = bytes(buf[pos + 1 : eol])
    pos = eol + 2
    if t in b"$=!":  # bulk, verbatim, blob error: a length, then the payload
        n = int(head)
        if n < 0:
            return value, pos
        if t == 0x3D and type(value) is bytes:
            value = Verbatim(value)
        return value, pos + n + 2
    if t == 0x2B and type(value) is bytes:  # +
        return Status(value), pos
    if t == 0x28 and type(value) is bytes:  # (
        return BigNumber(value), pos
    if t == 0x2C and type(value) is float:  # ,
        return Double(value, head.decode("ascii", "replace")), pos
    if t in b"*~>|":
        n = int(head)
        if n < 0:
            return value, pos
        if t == 0x7C:
            n *= 2  # attribute: n key/value pairs, returned flat
        if not isinstance(value, list) or len(value) != n:
            raise _Mismatch
        items = []
        for child in value:
            child, pos = _relabel(child, buf, pos)
            items.append(child)
        if t == 0x7E:
            return RespSet(items), pos
        if t == 0x3E:
            return hiredis.PushNotification(items), pos
        return items, pos
    if t == 0x25:  # %
        if type(value) is not dict or len(value) != int(head):
            raise _Mismatch  # e.g. a repeated key collapsed by the dict
        out = {}
        for key, val in value.items():
            key, pos = _relabel(key, buf, pos)
            val, pos = _relabel(val, buf, pos)
            out[key] = val
        return out, pos
    return value, pos  # : _ # - carry nothing hiredis lost


def encode_command(argv: Sequence[bytes | str]) -> bytes:
    """A request as a RESP multibulk frame (what every Redis client sends)."""
    return encode_resp2([a if isinstance(a, bytes) else os.fsencode(a) for a in argv])


def split_command_line(line: bytes | str) -> list[bytes]:
    """Split a typed command like redis-cli (``sdssplitargs``): quotes and escapes.

    Raises :class:`ValueError` on unbalanced quotes.
    """
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    try:
        return split_inline(line)
    except ProtocolError:
        raise ValueError("Invalid argument(s)") from None


# -- formatting ---------------------------------------------------------------------------
# redis-cli's sdscatrepr(): printable ASCII as is, a few C escapes, \xHH for the rest.
_REPR = [chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in range(256)]
for _b, _esc in (
    (0x5C, "\\\\"),
    (0x22, '\\"'),
    (0x0A, "\\n"),
    (0x0D, "\\r"),
    (0x09, "\\t"),
    (0x07, "\\a"),
    (0x08, "\\b"),
):
    _REPR[_b] = _esc
del _b, _esc

_EMPTY = {
    "array": "(empty array)",
    "push": "(empty push)",
    "set": "(empty set)",
    "map": "(empty hash)",
}
_NUMSEP = {"array": ")", "push": ")", "set": "~", "map": "#"}


def quote_bytes(data: bytes) -> str:
    """``data`` the way redis-cli prints a bulk string: ``"a\\x00b"``."""
    return '"' + "".join([_REPR[b] for b in data]) + '"'


def format_double(v: float) -> str:
    """A double's text as the server writes it (``2.5``, ``3``, ``inf``, ``-0``)."""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if math.isnan(v):
        return "nan"
    if v.is_integer() and abs(v) < 1e17:
        return "-0" if v == 0 and math.copysign(1.0, v) < 0 else str(int(v))
    return repr(v)


def _text(data: bytes) -> str:
    # Raw output must round-trip any bytes: _write encodes back with surrogateescape.
    return data.decode("utf-8", "surrogateescape")


def _classify(v: Any, resp3: bool) -> tuple[str, Any]:
    """``(kind, payload)`` of a reply value as redis-cli would see it on the wire.

    On RESP2 the richer types travel as their RESP2 encodings (tokenginx.replies):
    bool as integer, double as bulk text, map as a flat array, set and push as arrays.
    """
    t = type(v)
    if t is bytes or t is bytearray or t is memoryview:
        return "bulk", bytes(v)
    if t is Status:
        return "status", bytes(v)
    if t is bool:
        return ("bool", v) if resp3 else ("int", int(v))
    if t is int:
        return "int", v
    if v is None or v is NULL_ARRAY:
        return "nil", None
    if t is list or t is tuple:
        return "array", list(v)
    if isinstance(v, (hiredis.ReplyError, CommandError)):
        return "error", v.message if isinstance(v, CommandError) else str(v)
    if t is float or t is Double:
        text = v.text if t is Double else format_double(v)
        return ("double", text) if resp3 else ("bulk", text.encode())
    if t is dict:
        if resp3:
            return "map", list(v.items())
        return "array", [x for kv in v.items() for x in kv]
    if t is RespSet or t is set or t is frozenset:
        return ("set" if resp3 else "array"), list(v)
    if t is Push or t is hiredis.PushNotification:
        return ("push" if resp3 else "array"), list(v)
    if t is Verbatim:
        return ("verbatim" if resp3 else "bulk"), bytes(v)
    if t is BigNumber:
        return ("bignum", _text(v)) if resp3 else ("bulk", bytes(v))
    if t is str:
        return "bulk", v.encode("utf-8", "surrogateescape")
    if isinstance(v, bytes):
        return "bulk", bytes(v)
    if isinstance(v, int):
        return "int", int(v)
    if isinstance(v, (list, tuple)):
        return "array", list(v)
    raise TypeError(f"cannot format {t.__name__} as a reply")


def _is_multiline(v: Any, resp3: bool) -> bool:
    """redis-cli's cliIsMultilineValueTTY: a map value this tall starts on a new line."""
    kind, p = _classify(v, resp3)
    if kind in ("array", "set", "push"):
        return len(p) > 1 or (len(p) == 1 and _is_multiline(p[0], resp3))
    if kind == "map":
        return len(p) > 1 or (len(p) == 1 and _is_multiline(p[0][1], resp3))
    return False


def _tty(v: Any, prefix: str, resp3: bool) -> str:
    kind, p = _classify(v, resp3)
    if kind == "bulk":
        return quote_bytes(p) + "\n"
    if kind == "status":
        return _text(p) + "\n"
    if kind == "int":
        return f"(integer) {p}\n"
    if kind == "nil":
        return "(nil)\n"
    if kind == "error":
        return f"(error) {p}\n"
    if kind == "double":
        return f"(double) {p}\n"
    if kind == "bool":
        return "(true)\n" if p else "(false)\n"
    if kind == "verbatim":
        return _text(p) + "\n"
    if kind == "bignum":
        return f"(big number) {p}\n"
    if not p:
        return _EMPTY[kind] + "\n"
    # Aggregates: "N) " before each element, right-aligned to the widest index; nested
    # lines are indented past it. The first element has no indent: the caller already
    # printed its own index on that line.
    width = len(str(len(p)))
    sub = prefix + " " * (width + 2)
    sep = _NUMSEP[kind]
    out = []
    for i, item in enumerate(p):
        out.append(f"{prefix if i else ''}{i + 1:>{width}}{sep} ")
        if kind == "map":
            key, val = item
            out.append(_tty(key, sub, resp3)[:-1] + " => ")
            if _is_multiline(val, resp3):
                out.append("\n" + sub)
            out.append(_tty(val, sub, resp3))
        else:
            out.append(_tty(item, sub, resp3))
    return "".join(out)


def _raw(v: Any, resp3: bool) -> str:
    kind, p = _classify(v, resp3)
    if kind in ("bulk", "status", "verbatim"):
        return _text(p)
    if kind == "int":
        return str(p)
    if kind == "nil":
        return ""
    if kind == "error":
        return p + "\n"
    if kind in ("double", "bignum"):
        return p
    if kind == "bool":
        return "(true)" if p else "(false)"
    if kind == "map":
        return "\n".join(_raw(k, resp3) + " " + _raw(x, resp3) for k, x in p)
    return "\n".join(_raw(x, resp3) for x in p)


def format_reply(value: Any, resp3: bool = False, *, raw: bool = False) -> str:
    """What redis-cli prints for ``value``, trailing newline included.

    ``value`` is a reply as :class:`ReplyReader` (hiredis) returns it or as a server
    handler does (:mod:`tokenginx.replies`); ``resp3`` says which protocol carried it,
    which matters for the types RESP2 cannot express (see :func:`_classify`).
    ``raw`` is redis-cli's ``--raw``: values unquoted and without type labels.
    """
    if type(value) is Replies:
        return "".join(format_reply(v, resp3, raw=raw) for v in value)
    if raw:
        return _raw(value, resp3) + "\n"
    return _tty(value, "", resp3)


def format_verbatim(value: Any, resp3: bool = False) -> str:
    """Raw text with no added newline: how redis-cli always prints INFO, CLIENT LIST…"""
    return _raw(value, resp3)


def format_invalidate(value: Sequence[Any]) -> str | None:
    """A RESP3 ``invalidate`` push as redis-cli shows it, or None for any other push."""
    if len(value) != 2 or value[0] != b"invalidate" or not isinstance(value[1], list):
        return None
    keys = ", ".join(f"'{_text(k)}'" for k in value[1] if isinstance(k, bytes))
    return f"-> invalidate: {keys}\n"


def is_error(value: Any) -> bool:
    return isinstance(value, (hiredis.ReplyError, CommandError))


# Commands redis-cli always prints raw: their reply is a text meant for humans.
def prefers_raw(argv: Sequence[bytes]) -> bool:
    cmd = argv[0].lower() if argv else b""
    sub = argv[1].lower() if len(argv) > 1 else b""
    n = len(argv)
    return (
        cmd in (b"info", b"lolwut")
        or (cmd == b"debug" and sub in (b"htstats", b"htstats-key"))
        or (cmd == b"memory" and sub in (b"malloc-stats", b"doctor"))
        or (cmd == b"cluster" and n == 2 and sub in (b"nodes", b"info"))
        or (cmd == b"client" and sub in (b"list", b"info"))
        or (cmd == b"latency" and ((n == 3 and sub == b"graph") or (n == 2 and sub == b"doctor")))
    )


# -- INFO and the stats summary -----------------------------------------------------------
def parse_info(text: str | bytes) -> dict[str, str]:
    """INFO's ``field:value`` lines as a flat dict (``db0`` → ``keys=1,expires=0,…``)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields


def _keyspace(fields: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    for key, value in fields.items():
        if key.startswith("db") and key[2:].isdigit():
            parts = dict(p.partition("=")[::2] for p in value.split(","))
            yield key, parts


def _duration(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"


def format_stats(fields: dict[str, str], addr: str = "") -> str:
    """A compact human summary of INFO (the ``stats`` shortcut)."""
    get = fields.get
    if "tokenginx_version" in fields:
        name = f"TokenginX {fields['tokenginx_version']}"
        if "redis_version" in fields:
            name += f" (Redis {fields['redis_version']} compatible)"
    else:
        name = f"Redis {get('redis_version', '?')}"
    lines = [name + (f" at {addr}" if addr else "")]
    uptime = get("uptime_in_seconds")
    lines.append(f"uptime:       {_duration(int(uptime)) if uptime and uptime.isdigit() else '?'}")
    lines.append(f"clients:      {get('connected_clients', '?')}")
    lines.append(f"memory:       {get('used_memory_human', '?')}")
    lines.append(f"ops/sec:      {get('instantaneous_ops_per_sec', '?')}")
    hits, misses = get("keyspace_hits"), get("keyspace_misses")
    hm = f"{hits or '?'}/{misses or '?'}"
    if hits and misses and hits.isdigit() and misses.isdigit() and int(hits) + int(misses):
        hm += f" ({100 * int(hits) / (int(hits) + int(misses)):.1f}% hits)"
    lines.append(f"hits/misses:  {hm}")
    lines.append(f"expired keys: {get('expired_keys', '?')}")
    dbs = [
        f"{db}={p.get('keys', '?')} (expires {p.get('expires', '?')})"
        for db, p in _keyspace(fields)
    ]
    lines.append(f"keys:         {', '.join(dbs) if dbs else '0'}")
    return "\n".join(lines) + "\n"


# -- command line -------------------------------------------------------------------------
USAGE = f"""\
Usage: {PROG} [OPTIONS] [cmd [arg [arg ...]]]
  -h <hostname>      Server hostname (default: {DEFAULT_HOST}, env TOKENGINX_HOST).
  -p <port>          Server port (default: {DEFAULT_PORT}, env TOKENGINX_PORT).
  -server <host:port>
                     Server address in one argument (also --server).
  -u <uri>           Server URI: redis://[[user]:password@]host[:port][/db].
  -a <password>      Password to AUTH with (safer: env TOKENGINX_PASSWORD or REDISCLI_AUTH).
  --user <username>  Username to AUTH with (needs -a).
  --no-auth-warning  Don't warn about a password given on the command line.
  -n <db>            Database number (env TOKENGINX_DB).
  -2                 Start the session in RESP2 protocol mode (the default).
  -3                 Start the session in RESP3 protocol mode (HELLO 3).
  -t <seconds>       Connect and read timeout (default: 10s to connect, no read timeout).
  -c <command>       Run one command given as a single string, e.g. -c "SET key value".
  -f <file>          Run the commands in <file> (- for stdin), one per line.
  --raw              Print raw replies (no quotes or type labels).
  --no-raw           Print human-readable replies (the default).
  -e                 Accepted for redis-cli compatibility: error replies always exit 1.
  --help             Output this help and exit.
  -v, --version      Output version and exit.

Shortcuts:
  {PROG} ping            PING (exit 0 when the server answers; a Docker healthcheck)
  {PROG} info [section]  the raw INFO text
  {PROG} stats           a compact summary of INFO

Without a command, an interactive prompt starts (quit, exit or Ctrl-D to leave).
Exit status: 0 ok, 1 error reply, 2 server unreachable or bad usage.
"""


class UsageError(Exception):
    pass


@dataclass
class Options:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    password: str | None = None
    password_on_cli: bool = False
    user: str | None = None
    db: int = 0
    resp3: bool = False
    raw: bool = False
    timeout: float | None = None
    command: list[bytes] = field(default_factory=list)
    command_string: str | None = None
    file: str | None = None
    auth_warning: bool = True
    help: bool = False
    version: bool = False


def _int_arg(opt: str, value: str, low: int, high: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{opt} expects a number, got {value!r}") from None
    if not low <= n <= high:
        raise UsageError(f"{opt} {n} is out of range")
    return n


def _split_hostport(value: str, opts: Options) -> None:
    if value.startswith("["):  # [v6]:port
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if host:
        opts.host = host
    if port:
        opts.port = _int_arg("-server", port, 1, 65535)


def _apply_uri(uri: str, opts: Options) -> None:
    u = urlsplit(uri)
    if u.scheme not in ("redis", "tokenginx"):
        raise UsageError(f"invalid URI scheme in {uri!r} (expected redis://)")
    if u.hostname:
        opts.host = u.hostname
    try:
        port = u.port
    except ValueError:
        raise UsageError(f"invalid port in {uri!r}") from None
    if port:
        opts.port = port
    if u.password is not None:
        opts.password, opts.password_on_cli = unquote(u.password), True
        if u.username:
            opts.user = unquote(u.username)
    elif u.username:
        opts.password, opts.password_on_cli = unquote(u.username), True
    if u.path.strip("/"):
        opts.db = _int_arg("-u", u.path.strip("/"), 0, 1 << 31)


_VALUE_OPTIONS = {
    "-h": "host",
    "--host": "host",
    "-p": "port",
    "--port": "port",
    "-a": "password",
    "--pass": "password",
    "--password": "password",
    "--user": "user",
    "-n": "db",
    "--db": "db",
    "-server": "server",
    "--server": "server",
    "-u": "uri",
    "-c": "command",
    "-f": "file",
    "-t": "timeout",
    "--timeout": "timeout",
}


def parse_args(argv: Sequence[str], env: dict[str, str] | None = None) -> Options:
    """redis-cli style: options first; the first other word starts the command."""
    env = dict(os.environ) if env is None else env
    opts = Options()
    if env.get("TOKENGINX_HOST"):
        opts.host = env["TOKENGINX_HOST"]
    if env.get("TOKENGINX_PORT"):
        opts.port = _int_arg("TOKENGINX_PORT", env["TOKENGINX_PORT"], 1, 65535)
    db = env.get("TOKENGINX_DB") or env.get("TOKENGINX_DATABASE")
    if db:
        opts.db = _int_arg("TOKENGINX_DB", db, 0, 1 << 31)
    opts.password = env.get("TOKENGINX_PASSWORD") or env.get("REDISCLI_AUTH") or None

    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUE_OPTIONS:
            if eq:
                value = inline
            elif i + 1 < n:
                i += 1
                value = argv[i]
            elif name == "-h":
                opts.help = True  # redis-cli: a lone -h asks for help
                break
            else:
                raise UsageError(f"option {name} needs a value")
            what = _VALUE_OPTIONS[name]
            if what == "host":
                opts.host = value
            elif what == "port":
                opts.port = _int_arg(name, value, 1, 65535)
            elif what == "password":
                opts.password, opts.password_on_cli = value, True
            elif what == "user":
                opts.user = value
            elif what == "db":
                opts.db = _int_arg(name, value, 0, 1 << 31)
            elif what == "server":
                _split_hostport(value, opts)
            elif what == "uri":
                _apply_uri(value, opts)
            elif what == "command":
                opts.command_string = value
            elif what == "file":
                opts.file = value
            elif what == "timeout":
                try:
                    opts.timeout = float(value)
                except ValueError:
                    raise UsageError(f"{name} expects seconds, got {value!r}") from None
                if opts.timeout <= 0:
                    raise UsageError(f"{name} must be positive")
        elif arg == "-3":
            opts.resp3 = True
        elif arg == "-2":
            opts.resp3 = False
        elif arg == "--raw":
            opts.raw = True
        elif arg == "--no-raw":
            opts.raw = False
        elif arg == "--no-auth-warning":
            opts.auth_warning = False
        elif arg == "-e":
            pass
        elif arg in ("--help", "-?"):
            opts.help = True
        elif arg in ("-v", "--version"):
            opts.version = True
        elif arg == "--":
            opts.command = [os.fsencode(a) for a in argv[i + 1 :]]
            break
        elif arg.startswith("-") and len(arg) > 1:
            raise UsageError(f"unrecognized option or bad number of args for: '{arg}'")
        else:
            opts.command = [os.fsencode(a) for a in argv[i:]]
            break
        i += 1
    if opts.user and not opts.password:
        raise UsageError("--user needs a password (-a)")
    if (opts.command_string is not None) + (opts.file is not None) + bool(opts.command) > 1:
        raise UsageError("give only one of: a command, -c, -f")
    return opts


# -- connection ---------------------------------------------------------------------------
class Unreachable(Exception):
    """The server could not be connected to."""


class ConnectionLost(Exception):
    """The connection broke while a command was in flight."""


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """One blocking TCP connection: send argv, read replies."""

    def __init__(self, host: str, port: int, timeout: float | None) -> None:
        self.addr = format_addr(host, port)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout or 10.0)
        except OSError as e:
            reason = e.strerror or str(e) or type(e).__name__
            raise Unreachable(f"Could not connect to TokenginX at {self.addr}: {reason}") from None
        self.sock.settimeout(timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.reader = ReplyReader()

    def send(self, argv: Sequence[bytes]) -> None:
        try:
            self.sock.sendall(encode_command(argv))
        except OSError as e:
            raise ConnectionLost(f"Error: {e.strerror or e}") from None

    def read(self) -> Any:
        while True:
            try:
                value = self.reader.gets()
            except ProtocolError as e:
                raise ConnectionLost(f"Error: {e.message}") from None
            if value is not NEED_DATA:
                return value
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                raise ConnectionLost("Error: timed out waiting for the reply") from None
            except OSError as e:
                raise ConnectionLost(f"Error: {e.strerror or e}") from None
            if not data:
                raise ConnectionLost("Error: Server closed the connection")
            self.reader.feed(data)

    def call(self, *argv: bytes) -> Any:
        self.send(argv)
        return self.read()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- session: commands, printing, the REPL -------------------------------------------------
_SUBSCRIBE = (b"subscribe", b"psubscribe", b"ssubscribe")
_UNSUBSCRIBE = (b"unsubscribe", b"punsubscribe", b"sunsubscribe")


def _write(text: str, stream: Any = None) -> None:
    stream = stream or sys.stdout
    data = text.encode("utf-8", "surrogateescape")
    buf: BinaryIO | None = getattr(stream, "buffer", None)
    if buf is None:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()
        return
    stream.flush()
    buf.write(data)
    buf.flush()


def _err(text: str) -> None:
    _write(text + "\n", sys.stderr)


class Session:
    """Connection state the REPL shows and restores after a reconnect."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.host, self.port = opts.host, opts.port
        self.user, self.password = opts.user, opts.password
        self.db = 0  # the database actually selected
        self.want_db = opts.db
        self.resp3 = False
        self.want_resp3 = opts.resp3
        self.in_multi = False
        self.conn: Connection | None = None

    @property
    def addr(self) -> str:
        return format_addr(self.host, self.port)

    # connection ------------------------------------------------------------------
    def connect(self) -> Connection:
        self.close()
        conn = Connection(self.host, self.port, self.opts.timeout)
        self.conn = conn
        self.db, self.resp3, self.in_multi = 0, False, False
        # Handshake as redis-cli does: AUTH, SELECT, HELLO 3; a failure is reported and
        # the session goes on (the next command then shows the server's error).
        try:
            if self.password is not None:
                argv = [b"AUTH", *([os.fsencode(self.user)] if self.user else [])]
                reply = conn.call(*argv, os.fsencode(self.password))
                if is_error(reply):
                    _err(f"AUTH failed: {_error_text(reply)}")
            if self.want_db:
                reply = conn.call(b"SELECT", b"%d" % self.want_db)
                if is_error(reply):
                    _err(f"SELECT {self.want_db} failed: {_error_text(reply)}")
                else:
                    self.db = self.want_db
            if self.want_resp3:
                reply = conn.call(b"HELLO", b"3")
                if is_error(reply):
                    _err(f"HELLO 3 failed: {_error_text(reply)}")
                else:
                    self.resp3 = True
        except ConnectionLost as e:
            self.close()
            raise Unreachable(f"Could not connect to TokenginX at {self.addr}: {e}") from None
        return conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # commands --------------------------------------------------------------------
    def execute(self, argv: list[bytes], *, retry: bool) -> list[Any]:
        """Send one command and return its replies (several for (UN)SUBSCRIBE a b).

        With ``retry``, a connection found broken is re-opened and the command sent
        once more, as redis-cli's REPL does (a server-side idle timeout, a restart).
        """
        try:
            return self._roundtrip(self.conn or self.connect(), argv)
        except ConnectionLost:
            cmd = argv[0].lower()
            self.close()
            if cmd == b"shutdown":
                return []  # the server went away as asked
            if not retry or cmd == b"quit":
                raise
        return self._roundtrip(self.connect(), argv)

    def _roundtrip(self, conn: Connection, argv: list[bytes]) -> list[Any]:
        conn.send(argv)
        cmd = argv[0].lower()
        expected = max(len(argv) - 1, 1) if cmd in _SUBSCRIBE + _UNSUBSCRIBE else 1
        replies: list[Any] = []
        while len(replies) < expected:
            value = conn.read()
            if (
                self.resp3
                and type(value) is hiredis.PushNotification
                and cmd not in _SUBSCRIBE + _UNSUBSCRIBE
            ):
                self._print_push(value)  # out of band (client tracking): not our reply
                continue
            replies.append(value)
            if is_error(value):
                break
        self._track_state(argv, replies[-1] if replies else None)
        return replies

    def _track_state(self, argv: list[bytes], reply: Any) -> None:
        """Follow SELECT/AUTH/HELLO/MULTI so the prompt and a reconnect stay right."""
        cmd = argv[0].lower()
        if cmd in (b"exec", b"discard"):
            self.in_multi = False
        if reply is None or is_error(reply):
            return
        if cmd == b"select" and len(argv) == 2 and argv[1].isdigit():
            self.db = self.want_db = int(argv[1])
        elif cmd == b"multi":
            self.in_multi = True
        elif cmd == b"auth" and len(argv) in (2, 3):
            self.user = _text(argv[1]) if len(argv) == 3 else None
            self.password = _text(argv[-1])
        elif cmd == b"hello" and len(argv) >= 2 and argv[1] in (b"2", b"3"):
            self.resp3 = self.want_resp3 = argv[1] == b"3"
            # HELLO protover [AUTH username password] [SETNAME name]
            j = 2
            while j < len(argv):
                opt = argv[j].lower()
                if opt == b"auth" and j + 2 < len(argv):
                    self.user, self.password = _text(argv[j + 1]), _text(argv[j + 2])
                    j += 3
                else:
                    j += 2 if opt == b"setname" else 1
        elif cmd == b"reset":
            self.db = self.want_db = 0
            self.resp3 = self.want_resp3 = False
            self.in_multi = False

    def _print_push(self, value: Any) -> None:
        text = None if self.opts.raw else format_invalidate(value)
        _write(text or format_reply(value, self.resp3, raw=self.opts.raw))

    def print_reply(self, argv: list[bytes], value: Any) -> None:
        if prefers_raw(argv):
            _write(format_verbatim(value, self.resp3))
        else:
            _write(format_reply(value, self.resp3, raw=self.opts.raw))

    def run(self, argv: list[bytes], *, retry: bool) -> bool:
        """Run one command and print its replies. True when it answered an error."""
        if not argv:
            return False
        cmd = argv[0].lower()
        if cmd == b"stats" and len(argv) == 1:
            return self.stats(retry=retry)
        replies = self.execute(argv, retry=retry)
        failed = any(is_error(v) for v in replies)
        if cmd in _SUBSCRIBE and not failed and not self.opts.raw:
            _write("Reading messages... (press Ctrl-C to quit)\n")
        for value in replies:
            self.print_reply(argv, value)
        if not failed and (cmd in _SUBSCRIBE or cmd == b"monitor"):
            self.stream(monitor=cmd == b"monitor")
        return failed

    def stream(self, *, monitor: bool) -> None:
        """After SUBSCRIBE or MONITOR: print what the server pushes until Ctrl-C."""
        conn = self.conn
        assert conn is not None
        try:
            while True:
                value = conn.read()
                if monitor and type(value) is bytes:
                    value = Status(value)  # MONITOR lines are status replies
                _write(format_reply(value, self.resp3, raw=self.opts.raw))
        except KeyboardInterrupt:
            self.close()  # the connection is stuck in pub/sub or monitor mode
        except ConnectionLost as e:
            self.close()
            _err(str(e))

    def stats(self, *, retry: bool) -> bool:
        replies = self.execute([b"INFO"], retry=retry)
        info = replies[0] if replies else None
        if info is None or is_error(info):
            self.print_reply([b"INFO"], info)
            return True
        _write(format_stats(parse_info(bytes(info)), self.addr))
        return False

    # modes -----------------------------------------------------------------------
    def run_batch(self, lines: Iterator[bytes]) -> int:
        self.connect()
        status = EXIT_OK
        for raw_line in lines:
            line = raw_line.strip()
            if not line or line.startswith(b"#"):
                continue
            try:
                argv = split_command_line(line)
            except ValueError as e:
                _write(f"{e}\n")
                status = EXIT_REPLY_ERROR
                continue
            if self.run(argv, retry=True):
                status = EXIT_REPLY_ERROR
        return status

    def prompt(self) -> str:
        if self.conn is None:
            return "not connected> "
        db = f"[{self.db}]" if self.db else ""
        tx = "(TX)" if self.in_multi else ""
        return f"tokenginx {self.addr}{db}{tx}> "

    def repl(self) -> int:
        try:
            self.connect()
        except Unreachable as e:
            _err(str(e))
        read_line = _line_reader()
        while True:
            try:
                line = read_line(self.prompt())
            except KeyboardInterrupt:
                _write("\n")
                continue
            if line is None:
                break
            try:
                argv = split_command_line(line)
            except ValueError as e:
                _write(f"{e}\n")
                continue
            if not argv:
                continue
            cmd = argv[0].lower()
            if cmd in (b"quit", b"exit") and len(argv) == 1:
                break
            if cmd == b"help" and len(argv) == 1:
                _write(REPL_HELP)
                continue
            try:
                self.run(argv, retry=True)
            except Unreachable as e:
                _err(str(e))
            except ConnectionLost as e:
                _err(str(e))
            except KeyboardInterrupt:
                self.close()  # a reply may still be on its way: start afresh
                _write("(interrupted)\n")
        self.close()
        return EXIT_OK


REPL_HELP = f"""\
{PROG} {__version__}
Type a command and its arguments, e.g.  SET key "a value with spaces"
Quotes and \\n \\t \\xHH escapes work as in redis-cli.
Local commands: help, stats (a summary of INFO), quit / exit / Ctrl-D.
"""


def _line_reader() -> Any:
    """A ``read(prompt) -> bytes | None`` for the REPL; readline when on a terminal."""
    if sys.stdin.isatty():
        try:
            import readline

            histfile = os.path.expanduser("~/.tokenginx_cli_history")
            try:
                readline.read_history_file(histfile)
            except OSError:
                pass
            import atexit

            atexit.register(_save_history, readline, histfile)
        except ImportError:
            pass

        def read_tty(prompt: str) -> bytes | None:
            try:
                return input(prompt).encode("utf-8", "surrogateescape")
            except EOFError:
                _write("\n")
                return None

        return read_tty

    stdin = sys.stdin.buffer

    def read_pipe(prompt: str) -> bytes | None:
        _write(prompt)
        line = stdin.readline()
        if not line:
            _write("\n")
            return None
        return line

    return read_pipe


def _save_history(readline: Any, path: str) -> None:
    try:
        readline.set_history_length(1000)
        readline.write_history_file(path)
    except OSError:
        pass


def _error_text(value: Any) -> str:
    return value.message if isinstance(value, CommandError) else str(value)


def _batch_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as f:
        yield from f


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        _err(f"{PROG}: {e}\nTry '{PROG} --help' for more information.")
        return EXIT_USAGE
    if opts.help:
        _write(USAGE)
        return EXIT_OK
    if opts.version:
        _write(f"{PROG} {__version__}\n")
        return EXIT_OK
    if opts.password_on_cli and opts.auth_warning:
        _err(
            "Warning: Using a password with '-a' or '-u' option on the command line "
            "interface may not be safe."
        )

    session = Session(opts)
    try:
        if opts.file is not None:
            try:
                return session.run_batch(_batch_lines(opts.file))
            except OSError as e:
                _err(f"{PROG}: cannot read {opts.file}: {e.strerror or e}")
                return EXIT_USAGE
        if opts.command_string is not None:
            try:
                command = split_command_line(opts.command_string)
            except ValueError as e:
                _err(f"{PROG}: {e}")
                return EXIT_USAGE
        else:
            command = opts.command
        if not command:
            return session.repl()
        return EXIT_REPLY_ERROR if session.run(command, retry=False) else EXIT_OK
    except Unreachable as e:
        _err(str(e))
        return EXIT_UNREACHABLE
    except ConnectionLost as e:
        _err(str(e))
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (| head): exit quietly instead of a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
