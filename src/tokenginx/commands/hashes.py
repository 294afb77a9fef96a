"""Hash commands (https://redis.io/docs/latest/commands/?group=hash).

A hash is a ``dict[bytes, bytes]`` in the keyspace. Redis never keeps an empty hash:
the command that removes the last field deletes the key (``db.delete_if_empty``).
Every mutation reports itself once through ``db.changed(key, event, "h", delta)``
with the memory delta from :func:`~tokenginx.storage.memory.field_size`.

Write commands look keys up with ``db.lookup`` (no keyspace hit/miss counted, like
Redis's ``lookupKeyWrite``); read commands use ``db.get_hash``. Field names and values
are both checked against ``limits.value_bytes``.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

from tokenginx.client import Client
from tokenginx.commands import longdouble
from tokenginx.commands.args import I64_MAX, I64_MIN, parse_int
from tokenginx.commands.scan import cursor_reply, parse_cursor, parse_options, scan_batch
from tokenginx.commands.strings import _value_limit
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, WrongTypeError, not_float, syntax_error, wrong_arity
from tokenginx.replies import OK
from tokenginx.storage.events import HASH
from tokenginx.storage.memory import Database, field_size

group = CommandGroup("hash")
command = group.command

_WF = "write denyoom fast"
_RF = "readonly fast"
_KEY = (1, 1, 1)
_LONG_MAX = I64_MAX  # Redis's ``long`` on LP64 platforms


def _hash_for_update(db: Database, key: bytes) -> dict[bytes, bytes] | None:
    """The hash at ``key`` for a write command, or None if missing (WRONGTYPE if not a
    hash). Counts no keyspace hit or miss."""
    v = db.lookup(key)
    if v is None:
        return None
    if type(v) is not dict:
        raise WrongTypeError()
    return v


def _random_field(h: dict[bytes, bytes]) -> bytes:
    # Dicts have no random access: islice skips at C speed, O(N) worst case.
    return next(itertools.islice(h, random.randrange(len(h)), None))


def _set_fields(client: Client, argv: list[bytes]) -> int:
    """HSET/HMSET body: store the pairs of ``argv[2:]``; returns the number added."""
    for arg in argv[2:]:
        _value_limit(client, arg)
    db = client.db
    key = argv[1]
    h = db.hash_for_write(key)
    added = delta = 0
    for i in range(2, len(argv), 2):
        f, v = argv[i], argv[i + 1]
        old = h.get(f)
        if old is None:
            added += 1
            delta += field_size(f, v)
        else:
            delta += len(v) - len(old)
        h[f] = v
    db.changed(key, "hset", HASH, delta)
    return added


@command(
    "hset",
    -4,
    _WF,
    _KEY,
    "write hash fast",
    "Creates or modifies the value of a field in a hash.",
    "2.0.0",
    "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the "
    "command is called with multiple field/value pairs.",
)
def hset(client: Client, argv: list[bytes]) -> int:
    if len(argv) % 2:
        raise wrong_arity("hset")
    return _set_fields(client, argv)


@command(
    "hmset",
    -4,
    _WF,
    _KEY,
    "write hash fast",
    "Sets the values of multiple fields.",
    "2.0.0",
    "O(N) where N is the number of fields being set.",
)
def hmset(client: Client, argv: list[bytes]) -> object:
    if len(argv) % 2:
        raise wrong_arity("hmset")
    _set_fields(client, argv)
    return OK


@command(
    "hsetnx",
    4,
    _WF,
    _KEY,
    "write hash fast",
    "Sets the value of a field in a hash only when the field doesn't exist.",
    "2.0.0",
)
def hsetnx(client: Client, argv: list[bytes]) -> int:
    key, f, v = argv[1], argv[2], argv[3]
    _value_limit(client, f)
    _value_limit(client, v)
    db = client.db
    h = _hash_for_update(db, key)
    if h is not None and f in h:
        return 0
    if h is None:
        h = db.hash_for_write(key)
    h[f] = v
    db.changed(key, "hset", HASH, field_size(f, v))
    return 1


@command("hget", 3, _RF, _KEY, "read hash fast", "Returns the value of a field in a hash.", "2.0.0")
def hget(client: Client, argv: list[bytes]) -> bytes | None:
    h = client.db.get_hash(argv[1])
    return None if h is None else h.get(argv[2])


@command(
    "hmget",
    -3,
    _RF,
    _KEY,
    "read hash fast",
    "Returns the values of all fields in a hash.",
    "2.0.0",
    "O(N) where N is the number of fields being requested.",
)
def hmget(client: Client, argv: list[bytes]) -> list[bytes | None]:
    h = client.db.get_hash(argv[1])
    if h is None:
        return [None] * (len(argv) - 2)
    get = h.get
    return [get(f) for f in argv[2:]]


@command(
    "hgetall",
    2,
    "readonly",
    _KEY,
    "read hash slow",
    "Returns all fields and values in a hash.",
    "2.0.0",
    "O(N) where N is the size of the hash.",
)
def hgetall(client: Client, argv: list[bytes]) -> dict[bytes, bytes]:
    h = client.db.get_hash(argv[1])
    return {} if h is None else dict(h)


@command(
    "hdel",
    -3,
    "write fast",
    _KEY,
    "write hash fast",
    "Deletes one or more fields and their values from a hash. Deletes the hash if no "
    "fields remain.",
    "2.0.0",
    "O(N) where N is the number of fields to be removed.",
)
def hdel(client: Client, argv: list[bytes]) -> int:
    db = client.db
    key = argv[1]
    h = _hash_for_update(db, key)
    if h is None:
        return 0
    removed = delta = 0
    for f in argv[2:]:
        v = h.pop(f, None)
        if v is not None:
            removed += 1
            delta -= field_size(f, v)
    if removed:
        db.changed(key, "hdel", HASH, delta)
        db.delete_if_empty(key)
    return removed


@command(
    "hexists",
    3,
    _RF,
    _KEY,
    "read hash fast",
    "Determines whether a field exists in a hash.",
    "2.0.0",
)
def hexists(client: Client, argv: list[bytes]) -> int:
    h = client.db.get_hash(argv[1])
    return 1 if h is not None and argv[2] in h else 0


def _not_integer_hash() -> CommandError:
    return CommandError("ERR hash value is not an integer")


def _store_field(
    db: Database, key: bytes, h: dict[bytes, bytes] | None, f: bytes, new: bytes, event: str
) -> None:
    if h is None:
        h = db.hash_for_write(key)
    old = h.get(f)
    h[f] = new
    db.changed(key, event, HASH, field_size(f, new) if old is None else len(new) - len(old))


@command(
    "hincrby",
    4,
    _WF,
    _KEY,
    "write hash fast",
    "Increments the integer value of a field in a hash by a number. Uses 0 as initial "
    "value if the field doesn't exist.",
    "2.0.0",
)
def hincrby(client: Client, argv: list[bytes]) -> int:
    incr = parse_int(argv[3])
    db = client.db
    key, f = argv[1], argv[2]
    h = _hash_for_update(db, key)
    old = None if h is None else h.get(f)
    cur = 0 if old is None else parse_int(old, _not_integer_hash())
    result = cur + incr
    if not I64_MIN <= result <= I64_MAX:
        raise CommandError("ERR increment or decrement would overflow")
    _store_field(db, key, h, f, b"%d" % result, "hincrby")
    return result


@command(
    "hincrbyfloat",
    4,
    _WF,
    _KEY,
    "write hash fast",
    "Increments the floating point value of a field by a number. Uses 0 as initial value "
    "if the field doesn't exist.",
    "2.6.0",
)
def hincrbyfloat(client: Client, argv: list[bytes]) -> bytes:
    # Redis computes in ``long double``; see tokenginx.commands.longdouble.
    incr = longdouble.parse(argv[3])
    if incr is None:
        raise not_float()
    if not longdouble.is_finite(incr):
        raise CommandError("ERR value is NaN or Infinity")
    db = client.db
    key, f = argv[1], argv[2]
    h = _hash_for_update(db, key)
    old = None if h is None else h.get(f)
    if old is None:
        base: longdouble.LongDouble = Fraction(0)
    else:
        parsed = longdouble.parse(old)
        if parsed is None:
            raise CommandError("ERR hash value is not a float")
        base = parsed
    result = longdouble.add(base, incr)
    if not longdouble.is_finite(result):
        raise CommandError("ERR increment would produce NaN or Infinity")
    new = longdouble.format_human(result)
    _store_field(db, key, h, f, new, "hincrbyfloat")
    return new


@command("hlen", 2, _RF, _KEY, "read hash fast", "Returns the number of fields in a hash.", "2.0.0")
def hlen(client: Client, argv: list[bytes]) -> int:
    h = client.db.get_hash(argv[1])
    return 0 if h is None else len(h)


@command(
    "hkeys",
    2,
    "readonly",
    _KEY,
    "read hash slow",
    "Returns all fields in a hash.",
    "2.0.0",
    "O(N) where N is the size of the hash.",
)
def hkeys(client: Client, argv: list[bytes]) -> list[bytes]:
    h = client.db.get_hash(argv[1])
    return [] if h is None else list(h)


@command(
    "hvals",
    2,
    "readonly",
    _KEY,
    "read hash slow",
    "Returns all values in a hash.",
    "2.0.0",
    "O(N) where N is the size of the hash.",
)
def hvals(client: Client, argv: list[bytes]) -> list[bytes]:
    h = client.db.get_hash(argv[1])
    return [] if h is None else list(h.values())


@command(
    "hstrlen",
    3,
    _RF,
    _KEY,
    "read hash fast",
    "Returns the length of the value of a field.",
    "3.2.0",
)
def hstrlen(client: Client, argv: list[bytes]) -> int:
    h = client.db.get_hash(argv[1])
    if h is None:
        return 0
    v = h.get(argv[2])
    return 0 if v is None else len(v)


@command(
    "hscan",
    -3,
    "readonly",
    _KEY,
    "read hash slow",
    "Iterates over fields and values of a hash.",
    "2.8.0",
    "O(1) for every call. O(N) for a complete iteration, including enough command calls "
    "for the cursor to return back to 0. N is the number of elements inside the "
    "collection. (TokenginX: O(N log COUNT) per call, see tokenginx.commands.scan.)",
)
def hscan(client: Client, argv: list[bytes]) -> list[object]:
    cursor = parse_cursor(argv[2])
    h = client.db.get_hash(argv[1])
    if h is None:
        return cursor_reply(0, [])  # options are not even parsed, as in Redis
    opts = parse_options(argv, 3, allow_novalues=True)
    nxt, fields = scan_batch(h, len(h), cursor, opts.count)
    match = opts.match
    out: list[bytes] = []
    for f in fields:
        if match is not None and not match(f):
            continue
        out.append(f)
        if not opts.novalues:
            out.append(h[f])
    return cursor_reply(nxt, out)


@command(
    "hrandfield",
    -2,
    "readonly",
    _KEY,
    "read hash slow",
    "Returns one or more random fields from a hash.",
    "6.2.0",
    "O(N) where N is the number of fields returned",
)
def hrandfield(client: Client, argv: list[bytes]) -> object:
    argc = len(argv)
    if argc >= 3:
        count = parse_int(argv[2])
        if count < -_LONG_MAX:
            raise CommandError(
                f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
            )
        if argc > 4 or (argc == 4 and argv[3].lower() != b"withvalues"):
            raise syntax_error()
        withvalues = argc == 4
        if withvalues and not -(_LONG_MAX // 2) <= count <= _LONG_MAX // 2:
            raise CommandError("ERR value is out of range")
        return _hrandfield_count(client, argv[1], count, withvalues)
    h = client.db.get_hash(argv[1])
    if h is None:
        return None
    return _random_field(h)


def _hrandfield_count(client: Client, key: bytes, count: int, withvalues: bool) -> list[object]:
    h = client.db.get_hash(key)
    if h is None or count == 0:
        return []
    if count < 0:
        # Repetitions allowed: ``-count`` independent picks, O(N + |count|).
        fields = random.choices(list(h), k=-count)
    elif count == 1:
        fields = [_random_field(h)]
    elif count >= len(h):
        fields = list(h)
    else:
        fields = random.sample(list(h), count)
    if not withvalues:
        return list(fields)
    if client.protocol >= 3:
        return [[f, h[f]] for f in fields]
    out: list[object] = []
    for f in fields:
        out.append(f)
        out.append(h[f])
    return out
