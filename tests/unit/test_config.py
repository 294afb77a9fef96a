import pytest

from tokenginx.cli.server_main import build_parser, load_config
from tokenginx.config import Config, ConfigError


def write(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_defaults():
    c = Config.load(env={})
    assert c.server.tcp_addr == "127.0.0.1:6380"
    assert c.server.databases == 16


def test_precedence_file_env_flags(tmp_path, monkeypatch):
    p = write(tmp_path, "server:\n  tcp_addr: '0.0.0.0:7000'\n  idle_timeout: 5\n")
    monkeypatch.setenv("TOKENGINX_SERVER_IDLE_TIMEOUT", "9")
    monkeypatch.setenv("TOKENGINX_LOG_LEVEL", "debug")
    args = build_parser().parse_args(["--config", str(p), "--port", "7100", "--timeout", "11"])
    c = load_config(args)
    assert c.server.tcp_addr == "0.0.0.0:7100"  # host from file, port from flag
    assert c.server.idle_timeout == 11
    assert c.logging.level == "debug"


def test_bind_flag_applies_to_every_listener(monkeypatch):
    args = build_parser().parse_args(["--bind", "0.0.0.0", "--http-port", "8181"])
    c = load_config(args)
    assert c.server.tcp_addr == "0.0.0.0:6380"
    assert c.server.http_addr == "0.0.0.0:8181"
    assert c.server.extra_tcp_binds == []


@pytest.mark.parametrize(
    "text",
    ["servr:\n  tcp_addr: 'x:1'\n", "server:\n  tcp_adr: 'x:1'\n", "server:\n  databases: many\n"],
)
def test_unknown_or_invalid_keys_are_errors(tmp_path, text):
    with pytest.raises(ConfigError):
        Config.load(write(tmp_path, text), env={})


def test_unknown_env_key_is_an_error():
    with pytest.raises(ConfigError, match="server.nope"):
        Config.load(env={"TOKENGINX_SERVER_NOPE": "1"})


def test_client_side_env_vars_are_ignored():
    Config.load(env={"TOKENGINX_HOST": "x", "TOKENGINX_API_KEY": "k"})


def test_placeholders(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_PASS", "pw")
    c = Config.load(write(tmp_path, "server:\n  requirepass: '${MY_PASS}'\n"), env={})
    assert c.server.requirepass == "pw"
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        Config.load(write(tmp_path, "server:\n  requirepass: '${NOT_SET_ANYWHERE}'\n"), env={})


def test_validation():
    with pytest.raises(ConfigError):
        Config.load(env={}, overrides={"server.tcp_addr": "nohostport"})
    with pytest.raises(ConfigError):
        Config.load(env={}, overrides={"cache.eviction_policy": "lfu"})


def test_nested_protocol_sections_from_yaml_env_and_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("protocols:\n  oauth:\n    default_token_ttl: 120\n  cas:\n    key_prefix: sso\n")
    c = Config.load(
        path,
        env={"TOKENGINX_PROTOCOLS_SAML_DEFAULT_SESSION_TTL": "60"},
        overrides={"protocols.cas.default_st_ttl": "30"},
    )
    assert c.protocols.oauth.default_token_ttl == 120
    assert c.protocols.cas.key_prefix == "sso"
    assert c.protocols.saml.default_session_ttl == 60
    assert c.protocols.cas.default_st_ttl == 30
    keys = c.keys()
    assert "protocols.oauth.default_code_ttl" in keys
    assert c.get("protocols.oauth.default_refresh_token_ttl") == 2592000


def test_nested_unknown_keys_and_bad_values_are_errors(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("protocols:\n  oauth:\n    default_tokn_ttl: 120\n")
    with pytest.raises(ConfigError, match="protocols.oauth.default_tokn_ttl"):
        Config.load(path, env={})
    with pytest.raises(ConfigError, match="is a section"):
        Config.load(env={}, overrides={"protocols.oauth": "x"})
    with pytest.raises(ConfigError, match="must be positive"):
        Config.load(env={}, overrides={"protocols.cas.default_st_ttl": 0})
    c = Config.load(env={"TOKENGINX_SECURITY_API_KEYS": "k1,k2", "TOKENGINX_HTTP_CORS_ORIGINS": "*"})
    assert c.security.api_keys == ["k1", "k2"]
    assert c.http.cors_origins == ["*"]
