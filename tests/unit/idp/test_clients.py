"""OAuth clients: validation, secrets, the config/keyspace split, through the real gate."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.idp.clients import CLIENTS_KEY, ClientError, ClientExists, Clients, build

WEB = {"client_id": "web", "client_secret": "web-secret", "redirect_uris": ["https://rp.example/cb?x=1"]}


def harness(clients: list[dict] | None = None) -> GateHarness:
    config = Config()
    config.oauth.server.enabled = True
    config.oauth.server.clients = clients if clients is not None else [WEB]
    return GateHarness(config)


@pytest.fixture
def h() -> GateHarness:
    return harness()


@pytest.fixture
def clients(h: GateHarness) -> Clients:
    assert h.server.idp is not None
    return h.server.idp.clients


def test_config_client_defaults() -> None:
    c = build(WEB, source="config")
    assert c.token_endpoint_auth_method == "client_secret_basic" and not c.public
    assert c.grant_types == ("authorization_code", "refresh_token", "client_credentials")
    assert "openid" in c.scopes and c.id_token_signed_response_alg == "RS256"
    assert c.secret_sha256 == hashlib.sha256(b"web-secret").hexdigest()
    assert "web-secret" not in repr(c) and "secret_sha256" not in c.as_json()


def test_public_client_defaults() -> None:
    c = build({"client_id": "spa", "redirect_uris": ["http://127.0.0.1/cb"]}, source="config")
    assert c.public and c.token_endpoint_auth_method == "none"
    assert "client_credentials" not in c.grant_types
    assert not c.check_secret("")


@pytest.mark.parametrize("data,field", [
    ({"client_id": ""}, "client_id"),
    ({"client_id": "a b"}, "client_id"),
    ({**WEB, "token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method"),
    ({**WEB, "grant_types": ["password"]}, "grant_types"),
    ({**WEB, "grant_types": ["implicit"]}, "grant_types"),
    ({"client_id": "p", "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}, "grant_types"),
    ({**WEB, "redirect_uris": []}, "redirect_uris"),
    ({**WEB, "redirect_uris": ["/relative"]}, "redirect_uris"),
    ({**WEB, "redirect_uris": ["https://rp.example/cb#frag"]}, "redirect_uris"),
    ({**WEB, "id_token_signed_response_alg": "HS256"}, "id_token_signed_response_alg"),
    ({**WEB, "backchannel_logout_uri": "ftp://x"}, "backchannel_logout_uri"),
    ({"client_id": "c", "redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "client_secret_post"},
     "client_secret"),
    ({"client_id": "p", "redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "none",
      "client_secret": "x"}, "client_secret"),
])
def test_invalid_definitions(data: dict, field: str) -> None:
    with pytest.raises(ClientError) as e:
        build(data, source="config")
    assert e.value.field == field


def test_redirect_uris_match_exactly(clients: Clients) -> None:
    c = clients.get("web")
    assert c is not None
    assert c.redirect_uri_allowed("https://rp.example/cb?x=1")
    for other in ("https://rp.example/cb", "https://rp.example/cb?x=1&y=2", "https://RP.example/cb?x=1",
                  "https://rp.example/cb?x=1/"):
        assert not c.redirect_uri_allowed(other)


def test_authenticate(clients: Clients) -> None:
    assert clients.authenticate("web", "web-secret") is not None
    assert clients.authenticate("web", "web-secreT") is None
    assert clients.authenticate("web", None) is None
    assert clients.authenticate("ghost", "web-secret") is None
    assert clients.authenticate("", None) is None


def test_bad_config_client_names_its_position() -> None:
    h = harness([WEB, {"client_id": "x", "grant_types": ["password"]}])
    assert h.server.idp is not None
    with pytest.raises(ClientError) as e:
        h.server.idp.clients  # noqa: B018
    assert e.value.field == "oauth.server.clients[1].grant_types"
    h = harness([WEB, WEB])
    assert h.server.idp is not None
    with pytest.raises(ClientError, match="twice"):
        h.server.idp.clients  # noqa: B018


def test_created_clients_live_in_the_keyspace(h: GateHarness, clients: Clients) -> None:
    c, secret = clients.create({"client_id": "svc", "grant_types": ["client_credentials"], "scopes": ["jobs"],
                                "client_secret": "chosen-by-caller"})
    assert secret and secret != "chosen-by-caller" and len(secret) >= 40
    stored = h.ok("HGET", CLIENTS_KEY, "svc")
    assert secret.encode() not in stored and b"chosen-by-caller" not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert clients.authenticate("svc", secret) == c
    assert [x.client_id for x in clients.all()] == ["svc", "web"]
    with pytest.raises(ClientExists):
        clients.create({"client_id": "svc", "grant_types": ["client_credentials"]})
    with pytest.raises(ClientExists):
        clients.create({"client_id": "web", "grant_types": ["client_credentials"]})
    assert clients.delete("svc") is True
    assert clients.get("svc") is None and clients.delete("svc") is False
    with pytest.raises(ClientError):
        clients.delete("web")


def test_public_client_created_without_secret(clients: Clients) -> None:
    c, secret = clients.create({"client_id": "app", "token_endpoint_auth_method": "none",
                                "redirect_uris": ["com.example.app:/cb"]})
    assert secret is None and c.public
    assert clients.authenticate("app", None) == c
    assert clients.authenticate("app", "anything") is None


def test_generated_client_id(clients: Clients) -> None:
    c, _ = clients.create({"grant_types": ["client_credentials"]})
    assert len(c.client_id) >= 16 and clients.get(c.client_id) == c


def test_damaged_record_is_not_a_client(h: GateHarness, clients: Clients) -> None:
    h.ok("HSET", CLIENTS_KEY, "junk", "{not json")
    h.ok("HSET", CLIENTS_KEY, "bad", '{"client_id": "bad", "grant_types": ["password"]}')
    assert clients.get("junk") is None and clients.get("bad") is None
    assert [c.client_id for c in clients.all()] == ["web"]


def test_config_validation_reports_bad_clients_and_ttls() -> None:
    from tokenginx.config import ConfigError

    config = Config()
    config.apply_mapping({"oauth": {"server": {"enabled": True, "clients": [WEB, {"client_id": "p",
                          "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}]}}})
    with pytest.raises(ConfigError, match=r"oauth\.server\.clients\[1\]\.grant_types"):
        config.validate()
    config = Config()
    config.oauth.server.refresh_token_ttl = -1
    with pytest.raises(ConfigError, match="refresh_token_ttl"):
        config.validate()
    config = Config()
    config.apply_mapping({"oauth": {"server": {"clients": [WEB]}}})
    config.validate()
