"""``tokenginx-server``: start the server on the embedded store.

Configuration precedence: built-in defaults < YAML file < ``TOKENGINX_*`` environment
< these flags. Without ``--config`` the first existing file of ``./config.yaml``,
``/etc/tokenginx/config.yaml`` and ``~/.tokenginx/config.yaml`` is used.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tokenginx.config import Config, ConfigError, format_addr, parse_addr
from tokenginx.version import REDIS_COMPAT_VERSION, __version__

EXIT_CONFIG_ERROR = 2
EXIT_STARTUP_FAILURE = 3

_DEFAULT_CONFIG_PATHS = (
    Path("config.yaml"),
    Path("/etc/tokenginx/config.yaml"),
    Path.home() / ".tokenginx" / "config.yaml",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tokenginx-server",
        description="TokenginX SSO session and token server (Redis protocol on 6380).",
    )
    p.add_argument("-c", "--config", "-config", metavar="FILE", help="YAML configuration file")
    p.add_argument("--bind", metavar="HOST", help="address to listen on (all interfaces: 0.0.0.0)")
    p.add_argument("-p", "--port", type=int, help="RESP (Redis protocol) port, default 6380")
    p.add_argument("--http-port", type=int, help="HTTP/REST port, default 8080")
    p.add_argument("--grpc-port", type=int, help="gRPC port, default 9090")
    p.add_argument("--data-dir", metavar="DIR", help="directory for persistent data")
    p.add_argument("--requirepass", metavar="PASSWORD", help="password clients must AUTH with")
    p.add_argument(
        "--fsync",
        choices=["always", "everysec", "no"],
        help="when the write-ahead log is fsynced (default everysec)",
    )
    p.add_argument(
        "--no-persistence", action="store_true", help="keep data in memory only (pure cache)"
    )
    p.add_argument("--log-level", choices=["debug", "info", "warn", "error"])
    p.add_argument("--log-format", choices=["text", "json"])
    p.add_argument("--maxclients", type=int, help="maximum simultaneous clients")
    p.add_argument("--timeout", type=int, help="close clients idle this many seconds (0 = never)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set server.tcp_keepalive=60 (repeatable)",
    )
    p.add_argument("--validate", action="store_true", help="check the configuration and exit")
    p.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    return p


def _overrides(args: argparse.Namespace, base: Config) -> dict[str, Any]:
    o: dict[str, Any] = {}

    def addr(key: str, port: int | None) -> None:
        host, cur_port = parse_addr(base.get(key), key)
        if args.bind is not None:
            host = args.bind
        o[key] = format_addr(host, cur_port if port is None else port)

    if args.bind is not None or args.port is not None:
        addr("server.tcp_addr", args.port)
    if args.bind is not None or args.http_port is not None:
        addr("server.http_addr", args.http_port)
    if args.bind is not None or args.grpc_port is not None:
        addr("server.grpc_addr", args.grpc_port)
    if args.bind is not None:
        o["server.extra_tcp_binds"] = []
    if args.data_dir is not None:
        o["storage.data_dir"] = args.data_dir
    if args.requirepass is not None:
        o["server.requirepass"] = args.requirepass
    if args.fsync is not None:
        o["persistence.fsync"] = args.fsync
    if args.no_persistence:
        o["persistence.enabled"] = False
    if args.log_level is not None:
        o["logging.level"] = args.log_level
    if args.log_format is not None:
        o["logging.format"] = args.log_format
    if args.maxclients is not None:
        o["server.max_connections"] = args.maxclients
    if args.timeout is not None:
        o["server.idle_timeout"] = args.timeout
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        o[key.strip()] = value
    return o


def load_config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None:
        path = os.environ.get("TOKENGINX_CONFIG") or next(
            (str(p) for p in _DEFAULT_CONFIG_PATHS if p.is_file()), None
        )
    # Flags are relative to what file + env give, so load those first.
    base = Config.load(path)
    return Config.load(path, overrides=_overrides(args, base))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"tokenginx-server {__version__} (redis-compatible {REDIS_COMPAT_VERSION})")
        return 0
    try:
        config = load_config(args)
    except ConfigError as e:
        print(f"tokenginx-server: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.validate:
        print("✓ configuration is valid")
        if not config.server.requirepass:
            print("! Warning: no password set (server.requirepass is empty)")
        return 0

    from tokenginx.logs import setup_logging
    from tokenginx.server import Server

    setup_logging(config.logging)
    server = Server(config)
    from tokenginx.storage.persistence.manager import RecoveryError

    try:
        server.run()
    except RecoveryError as e:
        print(f"tokenginx-server: cannot load the data directory: {e}", file=sys.stderr)
        return EXIT_STARTUP_FAILURE
    except OSError as e:
        print(f"tokenginx-server: cannot start: {e}", file=sys.stderr)
        return EXIT_STARTUP_FAILURE
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
