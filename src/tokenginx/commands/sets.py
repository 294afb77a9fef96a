"""Set commands (https://redis.io/docs/latest/commands/?group=set).

A set is a ``set[bytes]`` in the keyspace. Redis never keeps an empty set: the command
that removes the last member deletes the key (``db.delete_if_empty``), and the
``*STORE`` commands delete the destination when their result is empty. Mutations
report themselves through ``db.changed(key, event, "s", delta)`` with the memory delta
from :func:`~tokenginx.storage.memory.member_size`.

Replies that Redis sends as a RESP3 set (SMEMBERS, SINTER, SUNION, SDIFF, SPOP with a
count) are Python ``set`` objects; SRANDMEMBER with a count is an array, as in Redis.
Random picks copy the members into a tuple first (sets have no random access), so
SPOP/SRANDMEMBER with a count are O(N) in the size of the set.
"""

from __future__ import annotations

import itertools
import random

from tokenginx.client import Client
from tokenginx.commands.args import I64_MAX, parse_int
from tokenginx.commands.scan import cursor_reply, parse_cursor, parse_options, scan_batch
from tokenginx.commands.strings import _value_limit
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, WrongTypeError, syntax_error
from tokenginx.storage.events import SET
from tokenginx.storage.memory import Database, member_size

group = CommandGroup("set")
command = group.command

_KEY = (1, 1, 1)
_ALL_KEYS = (1, -1, 1)
_STORE_KEYS = (1, -1, 1)
_LONG_MAX = I64_MAX  # Redis's ``long`` on LP64 platforms


def _set_for_update(db: Database, key: bytes) -> set[bytes] | None:
    """The set at ``key`` for a write command, or None if missing (WRONGTYPE if not a
    set). Counts no keyspace hit or miss, like Redis's ``lookupKeyWrite``."""
    v = db.lookup(key)
    if v is None:
        return None
    if type(v) is not set:
        raise WrongTypeError()
    return v


def _sources(db: Database, keys: list[bytes], for_store: bool) -> list[set[bytes] | None]:
    """The sets named by ``keys`` (None for a missing key). Every key is type-checked,
    even after a missing one, as Redis 7 does."""
    if for_store:
        return [_set_for_update(db, k) for k in keys]
    return [db.get_set(k) for k in keys]


def _random_member(s: set[bytes]) -> bytes:
    # Sets have no random access: islice skips at C speed, O(N) worst case.
    return next(itertools.islice(s, random.randrange(len(s)), None))


def _out_of_range_long() -> CommandError:
    return CommandError(
        f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
    )


def _positive_count(raw: bytes) -> int:
    """Redis's ``getPositiveLongFromObjectOrReply`` with its default message."""
    err = CommandError("ERR value is out of range, must be positive")
    n = parse_int(raw, err)
    if n < 0:
        raise err
    return n


@command(
    "sadd",
    -3,
    "write denyoom fast",
    _KEY,
    "write set fast",
    "Adds one or more members to a set. Creates the key if it doesn't exist.",
    "1.0.0",
    "O(1) for each element added, so O(N) to add N elements when the command is called "
    "with multiple arguments.",
)
def sadd(client: Client, argv: list[bytes]) -> int:
    for m in argv[2:]:
        _value_limit(client, m)
    db = client.db
    key = argv[1]
    s = db.set_for_write(key)
    before = len(s)
    delta = 0
    for m in argv[2:]:
        if m not in s:
            s.add(m)
            delta += member_size(m)
    added = len(s) - before
    if added:
        db.changed(key, "sadd", SET, delta)
    return added


@command(
    "srem",
    -3,
    "write fast",
    _KEY,
    "write set fast",
    "Removes one or more members from a set. Deletes the set if the last member was removed.",
    "1.0.0",
    "O(N) where N is the number of members to be removed.",
)
def srem(client: Client, argv: list[bytes]) -> int:
    db = client.db
    key = argv[1]
    s = _set_for_update(db, key)
    if s is None:
        return 0
    removed = delta = 0
    for m in argv[2:]:
        if m in s:
            s.remove(m)
            removed += 1
            delta -= member_size(m)
    if removed:
        db.changed(key, "srem", SET, delta)
        db.delete_if_empty(key)
    return removed


@command(
    "smembers",
    2,
    "readonly",
    _KEY,
    "read set slow",
    "Returns all members of a set.",
    "1.0.0",
    "O(N) where N is the set cardinality.",
)
def smembers(client: Client, argv: list[bytes]) -> set[bytes]:
    s = client.db.get_set(argv[1])
    return set() if s is None else set(s)


@command(
    "sismember",
    3,
    "readonly fast",
    _KEY,
    "read set fast",
    "Determines whether a member belongs to a set.",
    "1.0.0",
)
def sismember(client: Client, argv: list[bytes]) -> int:
    s = client.db.get_set(argv[1])
    return 1 if s is not None and argv[2] in s else 0


@command(
    "smismember",
    -3,
    "readonly fast",
    _KEY,
    "read set fast",
    "Determines whether multiple members belong to a set.",
    "6.2.0",
    "O(N) where N is the number of elements being checked for membership",
)
def smismember(client: Client, argv: list[bytes]) -> list[int]:
    s = client.db.get_set(argv[1])
    if s is None:
        return [0] * (len(argv) - 2)
    return [1 if m in s else 0 for m in argv[2:]]


@command(
    "scard", 2, "readonly fast", _KEY, "read set fast", "Returns the number of members in a set."
)
def scard(client: Client, argv: list[bytes]) -> int:
    s = client.db.get_set(argv[1])
    return 0 if s is None else len(s)


@command(
    "spop",
    -2,
    "write fast",
    _KEY,
    "write set fast",
    "Returns one or more random members from a set after removing them. Deletes the set "
    "if the last member was popped.",
    "1.0.0",
    "Without the count argument O(1), otherwise O(N) where N is the value of the passed "
    "count. (TokenginX: O(N) in the size of the set.)",
)
def spop(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 3:
        raise syntax_error()
    db = client.db
    key = argv[1]
    if len(argv) == 3:
        return _spop_count(db, key, _positive_count(argv[2]))
    s = _set_for_update(db, key)
    if s is None:
        return None
    m = _random_member(s)
    s.remove(m)
    db.changed(key, "spop", SET, -member_size(m))
    db.delete_if_empty(key)
    return m


def _spop_count(db: Database, key: bytes, count: int) -> set[bytes]:
    s = _set_for_update(db, key)
    if s is None or count == 0:
        return set()
    if count >= len(s):
        popped = set(s)
        s.clear()
    else:
        popped = set(random.sample(tuple(s), count))
        s.difference_update(popped)
    db.changed(key, "spop", SET, -sum(member_size(m) for m in popped))
    db.delete_if_empty(key)
    return popped


@command(
    "srandmember",
    -2,
    "readonly",
    _KEY,
    "read set slow",
    "Get one or multiple random members from a set",
    "1.0.0",
    "Without the count argument O(1), otherwise O(N) where N is the absolute value of the "
    "passed count. (TokenginX: plus O(size of the set).)",
)
def srandmember(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 3:
        raise syntax_error()
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count < -_LONG_MAX:
            raise _out_of_range_long()
        s = client.db.get_set(argv[1])
        if s is None or count == 0:
            return []
        if count < 0:
            # Repetitions allowed: ``-count`` independent picks.
            return random.choices(tuple(s), k=-count)
        if count == 1:
            return [_random_member(s)]
        if count >= len(s):
            return list(s)
        return random.sample(tuple(s), count)
    s = client.db.get_set(argv[1])
    return None if s is None else _random_member(s)


@command(
    "sscan",
    -3,
    "readonly",
    _KEY,
    "read set slow",
    "Iterates over members of a set.",
    "2.8.0",
    "O(1) for every call. O(N) for a complete iteration, including enough command calls "
    "for the cursor to return back to 0. N is the number of elements inside the "
    "collection. (TokenginX: O(N log COUNT) per call, see tokenginx.commands.scan.)",
)
def sscan(client: Client, argv: list[bytes]) -> list[object]:
    cursor = parse_cursor(argv[2])
    s = client.db.get_set(argv[1])
    if s is None:
        return cursor_reply(0, [])  # options are not even parsed, as in Redis
    opts = parse_options(argv, 3, allow_novalues=False)
    nxt, members = scan_batch(s, len(s), cursor, opts.count)
    match = opts.match
    if match is not None:
        members = [m for m in members if match(m)]
    return cursor_reply(nxt, members)


# -- algebra -------------------------------------------------------------------------
def _inter(sets: list[set[bytes] | None], limit: int = 0) -> set[bytes]:
    if not sets or any(s is None for s in sets):
        return set()
    present: list[set[bytes]] = sorted(sets, key=len)  # type: ignore[arg-type]
    smallest, rest = present[0], present[1:]
    if not limit:
        return smallest.intersection(*rest)
    out: set[bytes] = set()
    for m in smallest:
        if all(m in other for other in rest):
            out.add(m)
            if len(out) >= limit:
                break
    return out


def _union(sets: list[set[bytes] | None]) -> set[bytes]:
    return set().union(*(s for s in sets if s is not None))


def _diff(sets: list[set[bytes] | None]) -> set[bytes]:
    first = sets[0]
    if first is None:
        return set()
    return first.difference(*(s for s in sets[1:] if s is not None))


def _store(db: Database, dst: bytes, result: set[bytes], event: str) -> int:
    """Write a computed set to ``dst`` (any previous value and TTL replaced), or delete
    ``dst`` when the result is empty (``del`` emitted only if it existed)."""
    if not result:
        db.delete(dst)
        return 0
    db.put(dst, result)  # accounts the memory of the new value and drops the old one
    db.changed(dst, event, SET)
    return len(result)


@command(
    "sinter",
    -2,
    "readonly",
    _ALL_KEYS,
    "read set slow",
    "Returns the intersect of multiple sets.",
    "1.0.0",
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
)
def sinter(client: Client, argv: list[bytes]) -> set[bytes]:
    return _inter(_sources(client.db, argv[1:], False))


@command(
    "sinterstore",
    -3,
    "write denyoom",
    _STORE_KEYS,
    "write set slow",
    "Stores the intersect of multiple sets in a key.",
    "1.0.0",
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
)
def sinterstore(client: Client, argv: list[bytes]) -> int:
    db = client.db
    return _store(db, argv[1], _inter(_sources(db, argv[2:], True)), "sinterstore")


@command(
    "sintercard",
    -3,
    "readonly movablekeys",
    (0, 0, 0),
    "read set slow",
    "Returns the number of members of the intersect of multiple sets.",
    "7.0.0",
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
)
def sintercard(client: Client, argv: list[bytes]) -> int:
    numkeys_err = CommandError("ERR numkeys should be greater than 0")
    numkeys = parse_int(argv[1], numkeys_err)
    if numkeys < 1:
        raise numkeys_err
    if numkeys > len(argv) - 2:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv):
            limit_err = CommandError("ERR LIMIT can't be negative")
            limit = parse_int(argv[i + 1], limit_err)
            if limit < 0:
                raise limit_err
            i += 2
        else:
            raise syntax_error()
    return len(_inter(_sources(client.db, argv[2 : 2 + numkeys], False), limit))


@command(
    "sunion",
    -2,
    "readonly",
    _ALL_KEYS,
    "read set slow",
    "Returns the union of multiple sets.",
    "1.0.0",
    "O(N) where N is the total number of elements in all given sets.",
)
def sunion(client: Client, argv: list[bytes]) -> set[bytes]:
    return _union(_sources(client.db, argv[1:], False))


@command(
    "sunionstore",
    -3,
    "write denyoom",
    _STORE_KEYS,
    "write set slow",
    "Stores the union of multiple sets in a key.",
    "1.0.0",
    "O(N) where N is the total number of elements in all given sets.",
)
def sunionstore(client: Client, argv: list[bytes]) -> int:
    db = client.db
    return _store(db, argv[1], _union(_sources(db, argv[2:], True)), "sunionstore")


@command(
    "sdiff",
    -2,
    "readonly",
    _ALL_KEYS,
    "read set slow",
    "Returns the difference of multiple sets.",
    "1.0.0",
    "O(N) where N is the total number of elements in all given sets.",
)
def sdiff(client: Client, argv: list[bytes]) -> set[bytes]:
    return _diff(_sources(client.db, argv[1:], False))


@command(
    "sdiffstore",
    -3,
    "write denyoom",
    _STORE_KEYS,
    "write set slow",
    "Stores the difference of multiple sets in a key.",
    "1.0.0",
    "O(N) where N is the total number of elements in all given sets.",
)
def sdiffstore(client: Client, argv: list[bytes]) -> int:
    db = client.db
    return _store(db, argv[1], _diff(_sources(db, argv[2:], True)), "sdiffstore")


@command(
    "smove",
    4,
    "write fast",
    (1, 2, 1),
    "write set fast",
    "Moves a member from one set to another.",
    "1.0.0",
)
def smove(client: Client, argv: list[bytes]) -> int:
    db = client.db
    src_key, dst_key, m = argv[1], argv[2], argv[3]
    src = db.lookup(src_key)
    dst = db.lookup(dst_key)
    if src is None:
        return 0  # even when the destination holds another type, as in Redis
    if type(src) is not set or (dst is not None and type(dst) is not set):
        raise WrongTypeError()
    if src is dst:
        return 1 if m in src else 0
    if m not in src:
        return 0
    src.remove(m)
    db.changed(src_key, "srem", SET, -member_size(m))
    db.delete_if_empty(src_key)
    target = db.set_for_write(dst_key)
    if m not in target:
        target.add(m)
        db.changed(dst_key, "sadd", SET, member_size(m))
    return 1
