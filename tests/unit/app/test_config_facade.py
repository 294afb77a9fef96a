"""The seed's flat config names on top of the real Config."""

from __future__ import annotations

import pytest

from tokenginx.config import Config, ConfigError


def test_attribute_assignment_maps_onto_real_keys():
    cfg = Config()
    cfg.http_host = "0.0.0.0"
    cfg.http_port = 8000
    cfg.tcp_port = 8001
    assert cfg.server.http_addr == "0.0.0.0:8000"
    assert cfg.server.tcp_addr == "127.0.0.1:8001"
    assert (cfg.http_host, cfg.http_port, cfg.tcp_host, cfg.tcp_port) == ("0.0.0.0", 8000, "127.0.0.1", 8001)
    cfg.tcp_host = "::1"
    assert cfg.server.tcp_addr == "[::1]:8001"
    cfg.validate()


def test_update_all_seed_keys():
    cfg = Config()
    cfg.server.tcp_keepalive = 0
    cfg.update(http_host="127.0.0.1", http_port=8000, tcp_host="127.0.0.1", tcp_port=8001,
               tcp_keep_alive=True, info=False)
    assert cfg.server.http_addr == "127.0.0.1:8000" and cfg.server.tcp_addr == "127.0.0.1:8001"
    assert cfg.server.tcp_keepalive == 300 and cfg.tcp_keep_alive is True
    assert cfg.logging.level == "warning" and cfg.info is False
    cfg.update(tcp_keep_alive=False, info=True)
    assert cfg.server.tcp_keepalive == 0 and cfg.logging.level == "info"


def test_keep_alive_true_keeps_a_configured_interval():
    cfg = Config()
    cfg.server.tcp_keepalive = 60
    cfg.tcp_keep_alive = True
    assert cfg.server.tcp_keepalive == 60


def test_unknown_keys_are_errors_naming_the_key():
    cfg = Config()
    with pytest.raises(ConfigError, match="'http_prot'"):
        cfg.update(http_port=1, http_prot=2)
    assert cfg.http_port == 8080  # nothing was applied
    with pytest.raises(ConfigError, match="'tcp_keepalive'"):
        cfg.tcp_keepalive = True


@pytest.mark.parametrize(
    ("key", "value"),
    [("http_port", 70000), ("http_port", "abc"), ("tcp_port", -1), ("http_host", ""),
     ("tcp_host", 5), ("tcp_keep_alive", "maybe"), ("info", "perhaps")],
)
def test_bad_values(key, value):
    with pytest.raises(ConfigError, match=key):
        Config().update(**{key: value})


def test_regular_config_use_is_unchanged():
    cfg = Config.load(env={}, overrides={"server.http_addr": "127.0.0.1:9999"})
    assert cfg.get("server.http_addr") == "127.0.0.1:9999"
    cfg.set("server.tcp_keepalive", 5)
    assert cfg.server.tcp_keepalive == 5
    assert "update" not in cfg.as_dict()
