from __future__ import annotations

import contextvars
import threading

import pytest

from tokenginx.app.context import (
    OutsideRequestContext,
    active,
    begin,
    current_request_id,
    end,
    fresh_context,
    g,
    run_in_fresh_g,
)


def test_outside_a_request_g_is_unavailable():
    assert not active()
    with pytest.raises(OutsideRequestContext):
        g.x = 1
    with pytest.raises(RuntimeError):
        _ = g.x


def test_begin_end_and_attribute_api():
    token = begin(request_id="r1")
    try:
        assert g.request_id == "r1" and current_request_id() == "r1"
        g.user = "u"
        assert hasattr(g, "user") and "user" in g and g.get("missing", 5) == 5
        assert not hasattr(g, "missing")
        assert g.setdefault("n", 1) == 1 and g.setdefault("n", 2) == 1
        assert g.pop("n") == 1 and g.pop("n", None) is None
        del g.user
        with pytest.raises(AttributeError):
            del g.user
        assert set(g) == {"request_id"} and g.as_dict() == {"request_id": "r1"}
    finally:
        end(token)
    assert not active()


def test_fresh_context_shares_nothing():
    token = begin(request_id="outer", secret="s")
    try:
        seen = run_in_fresh_g(lambda: (g.as_dict(), hasattr(g, "secret")), request_id="inner")
        assert seen == ({"request_id": "inner"}, False)
        assert g.secret == "s"
    finally:
        end(token)


def test_copied_context_sees_the_same_g_in_another_thread():
    token = begin(request_id="r")
    try:
        ctx = contextvars.copy_context()
        out = {}

        def work():
            out["rid"] = g.request_id
            g.from_thread = True

        t = threading.Thread(target=ctx.run, args=(work,))
        t.start()
        t.join()
        assert out["rid"] == "r" and g.from_thread is True  # same request, same namespace
    finally:
        end(token)


def test_two_contexts_are_independent():
    a, b = fresh_context(request_id="a"), fresh_context(request_id="b")
    a.run(setattr, g, "v", 1)
    assert b.run(lambda: hasattr(g, "v")) is False
    assert a.run(lambda: g.v) == 1
