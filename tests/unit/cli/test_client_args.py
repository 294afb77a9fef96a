"""tokenginx-client command line, command splitting and the INFO summary (no sockets)."""

from __future__ import annotations

import pytest

from tokenginx.cli.client_main import (
    DEFAULT_PORT,
    UsageError,
    encode_command,
    format_stats,
    parse_args,
    parse_info,
    split_command_line,
)


def test_defaults() -> None:
    o = parse_args([], env={})
    assert (o.host, o.port, o.db, o.password, o.resp3, o.raw) == (
        "127.0.0.1",
        DEFAULT_PORT,
        0,
        None,
        False,
        False,
    )
    assert o.command == [] and o.command_string is None and o.file is None


def test_redis_cli_options_then_command() -> None:
    o = parse_args(
        [
            "-h",
            "db.local",
            "-p",
            "7000",
            "-a",
            "pw",
            "--user",
            "u",
            "-n",
            "2",
            "-3",
            "--raw",
            "set",
            "k",
            "-1",
        ],
        env={},
    )
    assert (o.host, o.port, o.password, o.user, o.db, o.resp3, o.raw) == (
        "db.local",
        7000,
        "pw",
        "u",
        2,
        True,
        True,
    )
    assert o.password_on_cli
    # Everything from the first word on is the command, dashes included.
    assert o.command == [b"set", b"k", b"-1"]


def test_contract_spellings() -> None:
    o = parse_args(["-server", "localhost:6390", "-c", 'SET key "a value"'], env={})
    assert (o.host, o.port) == ("localhost", 6390)
    assert o.command_string == 'SET key "a value"'
    o = parse_args(["--server=[::1]:7001"], env={})
    assert (o.host, o.port) == ("::1", 7001)
    o = parse_args(["-server", "example"], env={})
    assert (o.host, o.port) == ("example", DEFAULT_PORT)


def test_uri() -> None:
    o = parse_args(["-u", "redis://user:p%40ss@h:7002/3"], env={})
    assert (o.host, o.port, o.user, o.password, o.db) == ("h", 7002, "user", "p@ss", 3)
    o = parse_args(["-u", "redis://:secret@h"], env={})
    assert (o.user, o.password) == (None, "secret")


def test_environment_defaults_and_flags_override() -> None:
    env = {"TOKENGINX_HOST": "envhost", "TOKENGINX_PORT": "7100", "TOKENGINX_PASSWORD": "envpw"}
    o = parse_args(["-p", "7200"], env=env)
    assert (o.host, o.port, o.password, o.password_on_cli) == ("envhost", 7200, "envpw", False)
    assert parse_args([], env={"REDISCLI_AUTH": "x"}).password == "x"


def test_lone_h_asks_for_help() -> None:
    assert parse_args(["-h"], env={}).help
    assert parse_args(["--help"], env={}).help


@pytest.mark.parametrize(
    "argv",
    [
        ["-p"],
        ["-p", "http"],
        ["-p", "70000"],
        ["-n", "-1"],
        ["--bogus"],
        ["-c", "GET a", "GET", "b"],
        ["-f", "x", "GET", "b"],
        ["--user", "u"],
        ["-u", "http://h"],
        ["-t", "0"],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv, env={})


def test_split_like_redis_cli() -> None:
    assert split_command_line('set "a b" \'c d\' "\\x41\\n"') == [b"set", b"a b", b"c d", b"A\n"]
    assert split_command_line("  get   k  ") == [b"get", b"k"]
    assert split_command_line("") == []
    with pytest.raises(ValueError):
        split_command_line('get "open')


def test_encode_command_is_multibulk() -> None:
    assert (
        encode_command([b"SET", "k", b"\x00v"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\x00v\r\n"
    )


INFO = (
    "# Server\r\nredis_version:7.2.4\r\ntokenginx_version:0.1.0\r\nuptime_in_seconds:93784\r\n"
    "\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Memory\r\nused_memory_human:1.50M\r\n"
    "\r\n# Stats\r\ninstantaneous_ops_per_sec:42\r\nexpired_keys:7\r\nkeyspace_hits:30\r\n"
    "keyspace_misses:10\r\n\r\n# Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=0\r\n"
    "db3:keys=1,expires=0,avg_ttl=0\r\n"
)


def test_parse_info() -> None:
    fields = parse_info(INFO.encode())
    assert fields["redis_version"] == "7.2.4"
    assert fields["db3"] == "keys=1,expires=0,avg_ttl=0"
    assert "# Server" not in fields


def test_stats_summary() -> None:
    assert format_stats(parse_info(INFO), "127.0.0.1:6380") == (
        "TokenginX 0.1.0 (Redis 7.2.4 compatible) at 127.0.0.1:6380\n"
        "uptime:       1d 02:03:04\n"
        "clients:      3\n"
        "memory:       1.50M\n"
        "ops/sec:      42\n"
        "hits/misses:  30/10 (75.0% hits)\n"
        "expired keys: 7\n"
        "keys:         db0=5 (expires 2), db3=1 (expires 0)\n"
    )


def test_stats_summary_of_plain_redis_with_gaps() -> None:
    text = format_stats(parse_info("# Server\r\nredis_version:7.0.15\r\n"))
    assert text.splitlines()[0] == "Redis 7.0.15"
    assert "clients:      ?" in text
    assert text.endswith("keys:         0\n")
