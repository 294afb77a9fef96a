"""What MONITOR and SLOWLOG may show: secrets are hidden, everything else kept."""

from __future__ import annotations

from tokenginx.config import ProtocolsConfig
from tokenginx.gate.gate import redact

P = ProtocolsConfig()


def test_sso_extension_command_arguments_are_hidden() -> None:
    out = redact([b"OAUTH.SET", b"tok-secret", b"{}", b"3600"], P)
    assert out == [b"OAUTH.SET", b"(redacted)", b"(redacted)", b"(redacted)"]


def test_sso_key_ids_are_hidden_in_plain_commands() -> None:
    out = redact([b"GET", b"oauth:access_token:abc123"], P)
    assert out == [b"GET", b"oauth:access_token:(redacted)"]
    out = redact([b"DEL", b"cas:st:ST-1-xyz", b"plain:key"], P)
    assert out == [b"DEL", b"cas:st:(redacted)", b"plain:key"]


def test_custom_key_prefix_is_honoured() -> None:
    protocols = ProtocolsConfig()
    protocols.oauth.key_prefix = "sso-oauth"
    assert redact([b"GET", b"sso-oauth:refresh_token:r1"], protocols) == [
        b"GET", b"sso-oauth:refresh_token:(redacted)"]
    assert redact([b"GET", b"oauth:refresh_token:r1"], protocols) == [b"GET", b"oauth:refresh_token:r1"]


def test_internal_calls_show_only_the_command() -> None:
    out = redact([b"HSET", b"idp:user:alice", b"password", b"$argon2id$..."], P, internal=True)
    assert out == [b"HSET", b"(redacted)", b"(redacted)", b"(redacted)"]


def test_ordinary_commands_are_unchanged() -> None:
    argv = [b"SET", b"session:1", b"value"]
    assert redact(argv, P) == argv
    assert redact([b"AUTH", b"pw"], P) == [b"AUTH", b"(redacted)"]
