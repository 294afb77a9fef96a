from __future__ import annotations

import pytest

from tokenginx.app.routes import (
    DEFAULT_REGISTRY,
    Route,
    RouteError,
    RouteRegistry,
    starlette_path,
)


def handler(request):
    return {}


def test_register_keeps_route_fields_and_order():
    reg = RouteRegistry()
    reg.register("/a")(handler)
    reg.register("/b", method="post", auth=True, summary="B")(handler)
    reg.register("clients", protocol="TCP")(handler)
    http = reg.http_routes()
    assert [(r.path, r.method, r.auth, r.summary) for r in http] == [
        ("/a", "GET", False, None),
        ("/b", "POST", True, "B"),
    ]
    assert [r.path for r in reg.tcp_routes()] == ["clients"]
    assert len(reg) == 3


def test_decorator_returns_the_handler():
    reg = RouteRegistry()
    assert reg.register("/x")(handler) is handler


def test_tcp_route_lookup_is_case_insensitive():
    reg = RouteRegistry()
    reg.register("Subscribe", protocol="tcp")(handler)
    assert reg.tcp_route("SUBSCRIBE").handler is handler
    assert reg.tcp_route("subscribe").path == "Subscribe"
    assert reg.tcp_route("other") is None


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("/x",), {"method": "FETCH"}),
        (("/x",), {"protocol": "udp"}),
        (("no-slash",), {}),
        (("/a/*/b",), {}),
        (("/a*",), {}),
        (("/a/{id",), {}),
        (("/a/{id}/{id}",), {}),
        (("has space",), {"protocol": "tcp"}),
        (("",), {"protocol": "tcp"}),
    ],
)
def test_invalid_declarations_are_refused(args, kwargs):
    with pytest.raises(RouteError):
        RouteRegistry().register(*args, **kwargs)(handler)


def test_duplicates_are_refused():
    reg = RouteRegistry()
    reg.register("/x/{id}")(handler)
    with pytest.raises(RouteError, match="already registered"):
        reg.register("/x/{id}")(handler)
    reg.register("/x/{id}", method="POST")(handler)  # another method is fine
    reg.register("cmd", protocol="tcp")(handler)
    with pytest.raises(RouteError, match="already registered"):
        reg.register("CMD", protocol="tcp")(handler)


def test_non_callable_handler_refused():
    with pytest.raises(RouteError):
        RouteRegistry().register("/x")("not callable")  # type: ignore[arg-type]


def test_wildcard_translation():
    assert starlette_path("/files/*") == "/files/{wildcard:path}"
    assert starlette_path("/user/{id}") == "/user/{id}"


def test_module_level_route_feeds_default_registry_only():
    own = RouteRegistry()
    Route.register("/unit-default-probe", method="DELETE")(handler)
    try:
        route = next(r for r in DEFAULT_REGISTRY.http_routes() if r.path == "/unit-default-probe")
        assert route.method == "DELETE"
        assert own.http_routes() == []
    finally:
        DEFAULT_REGISTRY.remove(route)
    assert all(r.path != "/unit-default-probe" for r in DEFAULT_REGISTRY.routes())
