"""Generic key commands (https://redis.io/docs/latest/commands/?group=generic)."""

from __future__ import annotations

import copy

from tokenginx.client import Client
from tokenginx.commands.args import I64_MAX, parse_int
from tokenginx.commands.scan import cursor_reply, parse_cursor, parse_options
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, no_such_key, syntax_error
from tokenginx.replies import OK
from tokenginx.storage.memory import TYPE_NAMES

group = CommandGroup("generic")
command = group.command


# -- existence and deletion ---------------------------------------------------------------
@command("del", -2, "write", (1, -1, 1), "keyspace write slow", "Deletes one or more keys.", complexity="O(N)")
def del_(client: Client, argv: list[bytes]) -> int:
    delete = client.db.delete
    return sum(1 for k in argv[1:] if delete(k))


@command("unlink", -2, "write fast", (1, -1, 1), "keyspace write fast", "Asynchronously deletes one or more keys.", "4.0.0", "O(N)")
def unlink(client: Client, argv: list[bytes]) -> int:
    return del_(client, argv)


@command("exists", -2, "readonly fast", (1, -1, 1), "keyspace read fast", "Determines whether one or more keys exist.", complexity="O(N)")
def exists(client: Client, argv: list[bytes]) -> int:
    lookup = client.db.lookup
    return sum(1 for k in argv[1:] if lookup(k) is not None)


@command("touch", -2, "readonly fast", (1, -1, 1), "keyspace read fast", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", "3.2.1", "O(N)")
def touch(client: Client, argv: list[bytes]) -> int:
    return exists(client, argv)


@command("type", 2, "readonly fast", (1, 1, 1), "keyspace read fast", "Determines the type of value stored at a key.")
def type_(client: Client, argv: list[bytes]) -> object:
    from tokenginx.replies import Status

    return Status(client.db.type_of(argv[1]).encode())


# -- expiry -------------------------------------------------------------------------------
def _expire_generic(client: Client, argv: list[bytes], unit_ms: int, absolute: bool, name: str) -> int:
    key = argv[1]
    n = parse_int(argv[2])
    nx = xx = gt = lt = False
    for raw in argv[3:]:
        opt = raw.upper()
        if opt == b"NX":
            nx = True
        elif opt == b"XX":
            xx = True
        elif opt == b"GT":
            gt = True
        elif opt == b"LT":
            lt = True
        else:
            raise CommandError(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}")
    if nx and (xx or gt or lt):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    invalid = CommandError(f"ERR invalid expire time in '{name}' command")
    # LLONG_MIN / 1000 and LLONG_MAX / 1000 as C truncates them (not Python's floor).
    if unit_ms == 1000 and not -(I64_MAX // 1000) <= n <= I64_MAX // 1000:
        raise invalid
    when = n * unit_ms
    if not absolute:
        when += client.state.clock()
    if when > I64_MAX:
        raise invalid
    db = client.db
    if db.lookup(key) is None:
        return 0
    current = db.expire_at_ms(key)
    if nx and current is not None:
        return 0
    if xx and current is None:
        return 0
    if gt and (current is None or when <= current):
        return 0
    if lt and current is not None and when >= current:
        return 0
    db.set_expire(key, when)
    return 1


_EXPIRE_FLAGS = "write fast"
_EXPIRE_ACL = "keyspace write fast"


@command("expire", -3, _EXPIRE_FLAGS, (1, 1, 1), _EXPIRE_ACL, "Sets the expiration time of a key in seconds.")
def expire(client: Client, argv: list[bytes]) -> int:
    return _expire_generic(client, argv, 1000, False, "expire")


@command("pexpire", -3, _EXPIRE_FLAGS, (1, 1, 1), _EXPIRE_ACL, "Sets the expiration time of a key in milliseconds.", "2.6.0")
def pexpire(client: Client, argv: list[bytes]) -> int:
    return _expire_generic(client, argv, 1, False, "pexpire")


@command("expireat", -3, _EXPIRE_FLAGS, (1, 1, 1), _EXPIRE_ACL, "Sets the expiration time of a key to a Unix timestamp.", "1.2.0")
def expireat(client: Client, argv: list[bytes]) -> int:
    return _expire_generic(client, argv, 1000, True, "expireat")


@command("pexpireat", -3, _EXPIRE_FLAGS, (1, 1, 1), _EXPIRE_ACL, "Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0")
def pexpireat(client: Client, argv: list[bytes]) -> int:
    return _expire_generic(client, argv, 1, True, "pexpireat")


def _expire_time(client: Client, key: bytes) -> int | None:
    """None if missing; -1 if no deadline; else the deadline in ms."""
    db = client.db
    if db.lookup(key) is None:
        return None
    when = db.expire_at_ms(key)
    return -1 if when is None else when


@command("expiretime", 2, "readonly fast", (1, 1, 1), "keyspace read fast", "Returns the expiration time of a key as a Unix timestamp.", "7.0.0")
def expiretime(client: Client, argv: list[bytes]) -> int:
    when = _expire_time(client, argv[1])
    if when is None:
        return -2
    return -1 if when == -1 else (when + 500) // 1000


@command("pexpiretime", 2, "readonly fast", (1, 1, 1), "keyspace read fast", "Returns the expiration time of a key as a Unix milliseconds timestamp.", "7.0.0")
def pexpiretime(client: Client, argv: list[bytes]) -> int:
    when = _expire_time(client, argv[1])
    return -2 if when is None else when


@command("persist", 2, "write fast", (1, 1, 1), "keyspace write fast", "Removes the expiration time of a key.", "2.2.0")
def persist(client: Client, argv: list[bytes]) -> int:
    return 1 if client.db.persist(argv[1]) else 0


@command("ttl", 2, "readonly fast", (1, 1, 1), "keyspace read fast", "Returns the expiration time in seconds of a key.")
def ttl(client: Client, argv: list[bytes]) -> int:
    ms = client.db.pttl(argv[1])
    return ms if ms < 0 else (ms + 500) // 1000


@command("pttl", 2, "readonly fast", (1, 1, 1), "keyspace read fast", "Returns the expiration time in milliseconds of a key.", "2.6.0")
def pttl(client: Client, argv: list[bytes]) -> int:
    return client.db.pttl(argv[1])


# -- renaming and copying -----------------------------------------------------------------
@command("rename", 3, "write", (1, 2, 1), "keyspace write slow", "Renames a key and overwrites the destination.")
def rename(client: Client, argv: list[bytes]) -> object:
    src, dst = argv[1], argv[2]
    db = client.db
    if db.lookup(src) is None:
        raise no_such_key()
    if src != dst:
        db.rename(src, dst)
    return OK


@command("renamenx", 3, "write fast", (1, 2, 1), "keyspace write fast", "Renames a key only when the target key name doesn't exist.")
def renamenx(client: Client, argv: list[bytes]) -> int:
    src, dst = argv[1], argv[2]
    db = client.db
    if db.lookup(src) is None:
        raise no_such_key()
    if src == dst or db.lookup(dst) is not None:
        return 0
    db.rename(src, dst)
    return 1


@command("copy", -3, "write denyoom", (1, 2, 1), "keyspace write slow", "Copies the value of a key to a new key.", "6.2.0", "O(N)")
def copy_(client: Client, argv: list[bytes]) -> int:
    src, dst = argv[1], argv[2]
    target = client.db
    replace = False
    i = 3
    while i < len(argv):
        opt = argv[i].upper()
        if opt == b"REPLACE":
            replace = True
        elif opt == b"DB" and i + 1 < len(argv):
            index = parse_int(argv[i + 1])
            if not 0 <= index < len(client.state.keyspace.databases):
                raise CommandError("ERR DB index is out of range")
            target = client.state.keyspace.db(index)
            i += 1
        else:
            raise syntax_error()
        i += 1
    db = client.db
    if src == dst and target is db:
        raise CommandError("ERR source and destination objects are the same")
    value = db.lookup(src)
    if value is None:
        return 0
    if target.lookup(dst) is not None:
        if not replace:
            return 0
        target.delete(dst)
    target.put(dst, copy.copy(value), db.expire_at_ms(src))
    target.changed(dst, "copy_to", "g")
    return 1


# -- enumeration --------------------------------------------------------------------------
@command("keys", 2, "readonly", (0, 0, 0), "keyspace read slow dangerous", "Returns all key names that match a pattern.", complexity="O(N)")
def keys(client: Client, argv: list[bytes]) -> list[bytes]:
    return client.db.keys(argv[1])


@command("scan", -2, "readonly", (0, 0, 0), "keyspace read slow", "Iterates over the key names in the database.", "2.8.0", "O(1) for every call. O(N) for a complete iteration.")
def scan(client: Client, argv: list[bytes]) -> list[object]:
    cursor = parse_cursor(argv[1])
    opts = parse_options(argv, 2, allow_type=True)
    type_name = opts.type_name
    if type_name is not None and type_name not in TYPE_NAMES.values():
        # Redis 7.2 answers an unknown type with an empty page, not an error.
        type_name = "\0unknown"
    next_cursor, found = client.db.scan(cursor, opts.count, opts.match, type_name)
    return cursor_reply(next_cursor, found)


@command("randomkey", 1, "readonly", (0, 0, 0), "keyspace read slow", "Returns a random key name from the database.")
def randomkey(client: Client, argv: list[bytes]) -> bytes | None:
    return client.db.random_key()


@command("dbsize", 1, "readonly fast", (0, 0, 0), "keyspace read fast", "Returns the number of keys in the database.")
def dbsize(client: Client, argv: list[bytes]) -> int:
    return client.db.size()


def _flush_mode(argv: list[bytes]) -> None:
    if len(argv) > 2:
        raise syntax_error()
    if len(argv) == 2 and argv[1].upper() not in (b"ASYNC", b"SYNC"):
        raise syntax_error()


@command("flushdb", -1, "write", (0, 0, 0), "keyspace write slow dangerous", "Removes all keys from the current database.", complexity="O(N)")
def flushdb(client: Client, argv: list[bytes]) -> object:
    _flush_mode(argv)
    client.db.flush()
    return OK


@command("flushall", -1, "write", (0, 0, 0), "keyspace write slow dangerous", "Removes all keys from all databases.", complexity="O(N)")
def flushall(client: Client, argv: list[bytes]) -> object:
    _flush_mode(argv)
    client.state.keyspace.flush_all()
    return OK


@command("swapdb", 3, "write fast", (0, 0, 0), "keyspace write fast dangerous", "Swaps two Redis databases.", "4.0.0", "O(N)")
def swapdb(client: Client, argv: list[bytes]) -> object:
    n = len(client.state.keyspace.databases)
    try:
        a = parse_int(argv[1])
    except CommandError:
        raise CommandError("ERR invalid first DB index") from None
    try:
        b = parse_int(argv[2])
    except CommandError:
        raise CommandError("ERR invalid second DB index") from None
    if not (0 <= a < n and 0 <= b < n):
        raise CommandError("ERR DB index is out of range")
    if a != b:
        client.state.keyspace.swap(a, b)
    return OK


# -- OBJECT -------------------------------------------------------------------------------
group.container("object", acl="keyspace read slow", summary="A container for object introspection commands.", since="2.2.3")


def string_encoding(v: bytes) -> bytes:
    if len(v) <= 20:
        try:
            n = int(v)
        except ValueError:
            n = None
        if n is not None and b"%d" % n == v and -(2**63) <= n < 2**63:
            return b"int"
    return b"embstr" if len(v) <= 44 else b"raw"


def encoding_of(value: bytes | dict | set) -> bytes:
    t = type(value)
    if t is bytes:
        return string_encoding(value)  # type: ignore[arg-type]
    if t is dict:
        small = len(value) <= 128 and all(len(f) <= 64 and len(v) <= 64 for f, v in value.items())  # type: ignore[union-attr]
        return b"listpack" if small else b"hashtable"
    members = value
    if len(members) <= 512 and all(string_encoding(m) == b"int" for m in members):  # type: ignore[arg-type]
        return b"intset"
    if len(members) <= 128 and all(len(m) <= 64 for m in members):  # type: ignore[arg-type]
        return b"listpack"
    return b"hashtable"


@group.subcommand("object", "encoding", 3, "readonly", (2, 2, 1), "keyspace read slow", "Returns the internal encoding of a Redis object.", "2.2.3")
def object_encoding(client: Client, argv: list[bytes]) -> bytes | None:
    v = client.db.lookup(argv[2])
    return None if v is None else encoding_of(v)


@group.subcommand("object", "refcount", 3, "readonly", (2, 2, 1), "keyspace read slow", "Returns the reference count of a value of a key.", "2.2.3")
def object_refcount(client: Client, argv: list[bytes]) -> int | None:
    return None if client.db.lookup(argv[2]) is None else 1
