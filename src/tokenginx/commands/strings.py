"""String commands (https://redis.io/docs/latest/commands/?group=string)."""

from __future__ import annotations

from tokenginx.client import Client
from tokenginx.commands.args import I64_MAX, I64_MIN, format_float, parse_float, parse_int
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, WrongTypeError, syntax_error
from tokenginx.replies import OK

group = CommandGroup("string")
command = group.command

_W = "write denyoom"
_WF = "write denyoom fast"
_RF = "readonly fast"


def _value_limit(client: Client, value: bytes) -> None:
    limit = client.state.config.limits.value_bytes
    if len(value) > limit:
        raise CommandError(f"ERR string exceeds maximum allowed size ({limit} bytes)")


def _invalid_expire(name: str) -> CommandError:
    return CommandError(f"ERR invalid expire time in '{name}' command")


def expire_deadline(client: Client, unit: bytes, raw: bytes, name: str) -> int:
    """Absolute deadline in ms for EX/PX/EXAT/PXAT ``raw`` (all must be > 0)."""
    n = parse_int(raw)
    if n <= 0:
        raise _invalid_expire(name)
    if unit == b"EX":
        ms = n * 1000 + client.state.clock()
    elif unit == b"PX":
        ms = n + client.state.clock()
    elif unit == b"EXAT":
        ms = n * 1000
    else:
        ms = n
    if ms > I64_MAX or n > I64_MAX // 1000 and unit in (b"EX", b"EXAT"):
        raise _invalid_expire(name)
    return ms


@command("get", 2, _RF, (1, 1, 1), "read string fast", "Returns the string value of a key.")
def get(client: Client, argv: list[bytes]) -> bytes | None:
    return client.db.get_string(argv[1])


@command(
    "set",
    -3,
    _W,
    (1, 1, 1),
    "write string slow",
    "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
)
def set_(client: Client, argv: list[bytes]) -> object:
    if len(argv) == 3:
        value = argv[2]
        if len(value) > 1048576:
            _value_limit(client, value)
        client.db.set_string(argv[1], value)
        return OK
    key, value = argv[1], argv[2]
    _value_limit(client, value)
    nx = xx = keepttl = want_get = False
    unit: bytes | None = None
    raw = b""
    i = 3
    while i < len(argv):
        opt = argv[i].upper()
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"GET":
            want_get = True
        elif opt == b"KEEPTTL" and unit is None:
            keepttl = True
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and unit is None and not keepttl and i + 1 < len(argv):
            unit = opt
            raw = argv[i + 1]
            i += 1
        else:
            raise syntax_error()
        i += 1
    db = client.db
    expire_at = expire_deadline(client, unit, raw, "set") if unit is not None else None
    old = db.lookup(key)
    if want_get and old is not None and type(old) is not bytes:
        raise WrongTypeError()
    if (nx and old is not None) or (xx and old is None):
        return old if want_get else None
    db.set_string(key, value, expire_at, keep_ttl=keepttl)
    return old if want_get else OK


@command("setex", 4, _W, (1, 1, 1), "write string slow", "Sets the string value and expiration time of a key.", "2.0.0")
def setex(client: Client, argv: list[bytes]) -> object:
    _value_limit(client, argv[3])
    at = expire_deadline(client, b"EX", argv[2], "setex")
    client.db.set_string(argv[1], argv[3], at)
    return OK


@command("psetex", 4, _W, (1, 1, 1), "write string slow", "Sets both string value and expiration time in milliseconds of a key.", "2.6.0")
def psetex(client: Client, argv: list[bytes]) -> object:
    _value_limit(client, argv[3])
    at = expire_deadline(client, b"PX", argv[2], "psetex")
    client.db.set_string(argv[1], argv[3], at)
    return OK


@command("setnx", 3, _WF, (1, 1, 1), "write string fast", "Set the string value of a key only when the key doesn't exist.")
def setnx(client: Client, argv: list[bytes]) -> int:
    _value_limit(client, argv[2])
    if client.db.lookup(argv[1]) is not None:
        return 0
    client.db.set_string(argv[1], argv[2])
    return 1


@command("getset", 3, _WF, (1, 1, 1), "write string fast", "Returns the previous string value of a key after setting it to a new value.")
def getset(client: Client, argv: list[bytes]) -> bytes | None:
    _value_limit(client, argv[2])
    old = client.db.get_string(argv[1])
    client.db.set_string(argv[1], argv[2])
    return old


@command("getdel", 2, "write fast", (1, 1, 1), "write string fast", "Returns the string value of a key after deleting the key.", "6.2.0")
def getdel(client: Client, argv: list[bytes]) -> bytes | None:
    v = client.db.get_string(argv[1])
    if v is not None:
        client.db.delete(argv[1])
    return v


@command("getex", -2, "write fast", (1, 1, 1), "write string fast", "Returns the string value of a key after setting its expiration time.", "6.2.0")
def getex(client: Client, argv: list[bytes]) -> bytes | None:
    key = argv[1]
    unit: bytes | None = None
    raw = b""
    persist = False
    i = 2
    while i < len(argv):
        opt = argv[i].upper()
        if opt in (b"EX", b"PX", b"EXAT", b"PXAT") and unit is None and not persist and i + 1 < len(argv):
            unit, raw = opt, argv[i + 1]
            i += 1
        elif opt == b"PERSIST" and unit is None:
            persist = True
        else:
            raise syntax_error()
        i += 1
    at = expire_deadline(client, unit, raw, "getex") if unit is not None else None
    db = client.db
    v = db.get_string(key)
    if v is None:
        return None
    if at is not None:
        db.set_expire(key, at)
    elif persist:
        db.persist(key)
    return v


@command("mget", -2, _RF, (1, -1, 1), "read string fast", "Atomically returns the string values of one or more keys.", complexity="O(N)")
def mget(client: Client, argv: list[bytes]) -> list[bytes | None]:
    lookup = client.db.lookup
    out: list[bytes | None] = []
    for k in argv[1:]:
        v = lookup(k)
        out.append(v if type(v) is bytes else None)
    return out


def _pairs(argv: list[bytes], name: str) -> list[tuple[bytes, bytes]]:
    if len(argv) % 2 == 0:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    return list(zip(argv[1::2], argv[2::2]))


@command("mset", -3, _W, (1, -1, 2), "write string slow", "Atomically creates or modifies the string values of one or more keys.", complexity="O(N)")
def mset(client: Client, argv: list[bytes]) -> object:
    pairs = _pairs(argv, "mset")
    for _, v in pairs:
        _value_limit(client, v)
    for k, v in pairs:
        client.db.set_string(k, v)
    return OK


@command("msetnx", -3, _W, (1, -1, 2), "write string slow", "Atomically modifies the string values of one or more keys only when all keys don't exist.", complexity="O(N)")
def msetnx(client: Client, argv: list[bytes]) -> int:
    pairs = _pairs(argv, "msetnx")
    for _, v in pairs:
        _value_limit(client, v)
    if any(client.db.lookup(k) is not None for k, _ in pairs):
        return 0
    for k, v in pairs:
        client.db.set_string(k, v)
    return 1


def _incr(client: Client, key: bytes, delta: int) -> int:
    db = client.db
    cur = db.get_string(key)
    n = 0 if cur is None else parse_int(cur)
    result = n + delta
    if not I64_MIN <= result <= I64_MAX:
        raise CommandError("ERR increment or decrement would overflow")
    db.set_string(key, b"%d" % result, keep_ttl=True, event="incrby")
    return result


@command("incr", 2, _WF, (1, 1, 1), "write string fast", "Increments the integer value of a key by one.")
def incr(client: Client, argv: list[bytes]) -> int:
    return _incr(client, argv[1], 1)


@command("decr", 2, _WF, (1, 1, 1), "write string fast", "Decrements the integer value of a key by one.")
def decr(client: Client, argv: list[bytes]) -> int:
    return _incr(client, argv[1], -1)


@command("incrby", 3, _WF, (1, 1, 1), "write string fast", "Increments the integer value of a key by a number.")
def incrby(client: Client, argv: list[bytes]) -> int:
    return _incr(client, argv[1], parse_int(argv[2]))


@command("decrby", 3, _WF, (1, 1, 1), "write string fast", "Decrements a number from the integer value of a key.")
def decrby(client: Client, argv: list[bytes]) -> int:
    d = parse_int(argv[2])
    if d == I64_MIN:
        raise CommandError("ERR decrement would overflow")
    return _incr(client, argv[1], -d)


@command("incrbyfloat", 3, _WF, (1, 1, 1), "write string fast", "Increment the floating point value of a key by a number.", "2.6.0")
def incrbyfloat(client: Client, argv: list[bytes]) -> bytes:
    db = client.db
    incr_by = parse_float(argv[2])
    cur = db.get_string(argv[1])
    base = 0.0 if cur is None else parse_float(cur)
    result = base + incr_by
    if result != result or result in (float("inf"), float("-inf")):
        raise CommandError("ERR increment would produce NaN or Infinity")
    out = format_float(result)
    db.set_string(argv[1], out, keep_ttl=True, event="incrbyfloat")
    return out


@command("append", 3, _WF, (1, 1, 1), "write string fast", "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0")
def append(client: Client, argv: list[bytes]) -> int:
    db = client.db
    cur = db.get_string(argv[1])
    new = argv[2] if cur is None else cur + argv[2]
    _value_limit(client, new)
    db.set_string(argv[1], new, keep_ttl=True, event="append")
    return len(new)


@command("strlen", 2, _RF, (1, 1, 1), "read string fast", "Returns the length of a string value.", "2.2.0")
def strlen(client: Client, argv: list[bytes]) -> int:
    v = client.db.get_string(argv[1])
    return 0 if v is None else len(v)


@command("getrange", 4, "readonly", (1, 1, 1), "read string slow", "Returns a substring of the string stored at a key.", "2.4.0", "O(N)")
def getrange(client: Client, argv: list[bytes]) -> bytes:
    start, end = parse_int(argv[2]), parse_int(argv[3])
    v = client.db.get_string(argv[1])
    if not v:
        return b""
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    end = min(end, n - 1)
    if start > end:
        return b""
    return v[start : end + 1]


@command("setrange", 4, _W, (1, 1, 1), "write string slow", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", "2.2.0")
def setrange(client: Client, argv: list[bytes]) -> int:
    offset = parse_int(argv[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    patch = argv[3]
    db = client.db
    cur = db.get_string(argv[1])
    if not patch:
        return 0 if cur is None else len(cur)
    limit = client.state.config.limits.value_bytes
    if offset + len(patch) > limit:
        raise CommandError(f"ERR string exceeds maximum allowed size ({limit} bytes)")
    base = cur or b""
    if len(base) < offset:
        base = base + b"\x00" * (offset - len(base))
    new = base[:offset] + patch + base[offset + len(patch) :]
    db.set_string(argv[1], new, keep_ttl=True, event="setrange")
    return len(new)
