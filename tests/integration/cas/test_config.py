"""The cas.server settings are checked when the configuration loads."""

from __future__ import annotations

import pytest

from tokenginx.config import Config, ConfigError


@pytest.mark.parametrize("key, value, message", [
    ("cas.server.slo_format", "soap", "slo_format"),
    ("cas.server.callback_timeout_s", "0", "callback_timeout_s"),
    ("cas.server.tgt_ttl", "-1", "tgt_ttl"),
])
def test_bad_values_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.load(env={}, overrides={key: value})


def test_defaults_and_overrides() -> None:
    c = Config.load(env={}, overrides={"cas.server.services": "https://a.example, https://b.example",
                                       "cas.server.slo_format": "xml"})
    s = c.cas.server
    assert s.services == ["https://a.example", "https://b.example"]
    assert s.slo_format == "xml"
    assert (s.require_https, s.proxy, s.allow_http_proxy_callback, s.single_logout) == (
        False, True, False, True)
