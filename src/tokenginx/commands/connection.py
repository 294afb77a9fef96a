"""Connection commands: PING ECHO QUIT RESET HELLO AUTH SELECT CLIENT."""

from __future__ import annotations

from tokenginx.client import Client
from tokenginx.commands.args import parse_int
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, syntax_error
from tokenginx.gate.auth import auth_required, check_password
from tokenginx.replies import OK, PONG, Status, Verbatim
from tokenginx.version import REDIS_COMPAT_VERSION, __version__

group = CommandGroup("connection")
command = group.command

_CONN = "connection fast"


@command("ping", -1, "fast pubsub_ok", acl=_CONN, summary="Returns the server's liveliness response.")
def ping(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if client.protocol == 2 and client.subscriptions():
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else PONG


@command("echo", 2, "fast", acl=_CONN, summary="Returns the given string.")
def echo(client: Client, argv: list[bytes]) -> bytes:
    return argv[1]


@command("quit", -1, "no_auth fast pubsub_ok tx_control allow_busy", acl=_CONN, summary="Closes the connection.")
def quit_(client: Client, argv: list[bytes]) -> object:
    client.closing = True
    return OK


@command("reset", 1, "no_auth fast pubsub_ok tx_control allow_busy", acl=_CONN, summary="Resets the connection.", since="6.2.0")
def reset(client: Client, argv: list[bytes]) -> object:
    state = client.state
    client.multi = None
    client.multi_error = False
    client.unwatch()
    state.pubsub.drop_client(client)
    if client.monitor:
        client.monitor = False
        if client in state.monitors:
            state.monitors.remove(client)
    client.select(0)
    client.set_protocol(2)
    client.name = b""
    client.no_evict = client.no_touch = False
    client.authenticated = not state.auth_required()
    client.user = "default"
    client.update_restricted()
    return Status(b"RESET")


@command("auth", -2, "no_auth fast pubsub_ok allow_busy", acl=_CONN, summary="Authenticates the connection.")
def auth(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 3:
        raise syntax_error()
    if len(argv) == 2:
        if not auth_required(client.state.config):
            raise CommandError(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        check_password(client, b"default", argv[1])
    else:
        check_password(client, argv[1], argv[2])
    return OK


@command("hello", -1, "no_auth fast pubsub_ok allow_busy", acl=_CONN, summary="Handshakes with the Redis server.", since="6.0.0")
def hello(client: Client, argv: list[bytes]) -> object:
    protocol = client.protocol
    i = 1
    if len(argv) > 1:
        try:
            protocol = parse_int(argv[1])
        except CommandError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if protocol not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 2
    name: bytes | None = None
    while i < len(argv):
        opt = argv[i].upper()
        if opt == b"AUTH" and i + 2 < len(argv):
            check_password(client, argv[i + 1], argv[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(argv):
            name = _valid_name(argv[i + 1])
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{argv[i].decode('utf-8', 'replace')}'")
    if not client.authenticated:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
    if name is not None:
        client.name = name
    client.set_protocol(protocol)
    return {
        b"server": b"redis",
        b"version": REDIS_COMPAT_VERSION.encode(),
        b"proto": protocol,
        b"id": client.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
        b"tokenginx_version": __version__.encode(),
    }


@command("select", 2, "loading stale fast", acl=_CONN, summary="Changes the selected database.")
def select(client: Client, argv: list[bytes]) -> object:
    try:
        index = parse_int(argv[1])
    except CommandError:
        raise CommandError("ERR value is not an integer or out of range") from None
    if not 0 <= index < len(client.state.keyspace.databases):
        raise CommandError("ERR DB index is out of range")
    client.select(index)
    return OK


# -- CLIENT -------------------------------------------------------------------------
group.container("client", acl="connection slow", summary="A container for client connection commands.")
sub = group.subcommand


def _valid_name(name: bytes) -> bytes:
    if any(c <= 0x20 or c > 0x7E for c in name):
        raise CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
    return name


@sub("client", "id", 2, "noscript loading stale", acl=_CONN, summary="Returns the unique client ID of the connection.", since="5.0.0")
def client_id(client: Client, argv: list[bytes]) -> int:
    return client.id


@sub("client", "setname", 3, "noscript loading stale", acl="connection slow", summary="Sets the connection name.", since="2.6.9")
def client_setname(client: Client, argv: list[bytes]) -> object:
    client.name = _valid_name(argv[2])
    return OK


@sub("client", "getname", 2, "noscript loading stale", acl=_CONN, summary="Returns the name of the connection.", since="2.6.9")
def client_getname(client: Client, argv: list[bytes]) -> bytes | None:
    return client.name or None


@sub("client", "setinfo", 4, "noscript loading stale", acl="connection slow", summary="Sets information specific to the client or connection.", since="7.2.0")
def client_setinfo(client: Client, argv: list[bytes]) -> object:
    attr = argv[2].lower()
    value = argv[3]
    if any(c < 0x20 or c > 0x7E or c == 0x20 for c in value):
        raise CommandError(
            f"ERR {attr.decode('utf-8', 'replace')} cannot contain spaces, newlines or special characters."
        )
    if attr == b"lib-name":
        client.lib_name = value
    elif attr == b"lib-ver":
        client.lib_ver = value
    else:
        raise CommandError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
    return OK


def _client_filter(client: Client, argv: list[bytes], start: int) -> list[Client]:
    clients = list(client.state.clients.values())
    i = start
    while i < len(argv):
        opt = argv[i].upper()
        if i + 1 >= len(argv):
            raise syntax_error()
        val = argv[i + 1]
        if opt == b"ID":
            ids = set()
            for raw in argv[i + 1 :]:
                n = parse_int(raw)
                if n <= 0:
                    raise CommandError("ERR Invalid client ID")
                ids.add(n)
            clients = [c for c in clients if c.id in ids]
            break
        if opt == b"TYPE":
            t = val.lower()
            if t == b"pubsub":
                clients = [c for c in clients if c.subscriptions()]
            elif t in (b"normal", b"master", b"replica", b"slave"):
                clients = [c for c in clients if not c.subscriptions()] if t == b"normal" else []
            else:
                raise CommandError(f"ERR Unknown client type '{val.decode('utf-8', 'replace')}'")
        elif opt == b"USER":
            clients = [c for c in clients if c.user.encode() == val]
        elif opt in (b"ADDR",):
            clients = [c for c in clients if c.addr.encode() == val]
        elif opt == b"LADDR":
            clients = [c for c in clients if c.laddr.encode() == val]
        elif opt == b"SKIPME":
            if val.lower() == b"yes":
                clients = [c for c in clients if c is not client]
            elif val.lower() != b"no":
                raise syntax_error()
        else:
            raise syntax_error()
        i += 2
    return clients


@sub("client", "list", -2, "noscript loading stale", acl="admin slow dangerous connection", summary="Lists open connections.", since="2.4.0", complexity="O(N)")
def client_list(client: Client, argv: list[bytes]) -> Verbatim:
    clients = _client_filter(client, argv, 2)
    return Verbatim("".join(c.describe() + "\n" for c in clients).encode())


@sub("client", "info", 2, "noscript loading stale", acl=_CONN, summary="Returns information about the connection.", since="6.2.0")
def client_info(client: Client, argv: list[bytes]) -> Verbatim:
    return Verbatim((client.describe() + "\n").encode())


@sub("client", "kill", -3, "noscript loading stale", acl="admin slow dangerous connection", summary="Terminates open connections.", since="2.4.0", complexity="O(N)")
def client_kill(client: Client, argv: list[bytes]) -> object:
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        target = argv[2].decode("utf-8", "replace")
        victims = [c for c in client.state.clients.values() if c.addr == target]
        if not victims:
            raise CommandError("ERR No such client")
        _kill(client, victims)
        return OK
    victims = _client_filter(client, argv, 2)
    # The filter form skips the caller unless SKIPME no is given.
    if not any(a.upper() == b"SKIPME" for a in argv[2::2]):
        victims = [c for c in victims if c is not client]
    _kill(client, victims)
    return len(victims)


def _kill(caller: Client, victims: list[Client]) -> None:
    for v in victims:
        if v is caller:
            v.closing = True  # reply first, then close (data_received does it)
        else:
            v.close()


@sub("client", "no-evict", 3, "noscript loading stale", acl="admin slow dangerous connection", summary="Sets the client eviction mode of the connection.", since="7.0.0")
def client_no_evict(client: Client, argv: list[bytes]) -> object:
    client.no_evict = _on_off(argv[2])
    return OK


@sub("client", "no-touch", 3, "noscript loading stale", acl="slow connection", summary="Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", since="7.2.0")
def client_no_touch(client: Client, argv: list[bytes]) -> object:
    client.no_touch = _on_off(argv[2])
    return OK


def _on_off(v: bytes) -> bool:
    s = v.lower()
    if s == b"on":
        return True
    if s == b"off":
        return False
    raise syntax_error()

