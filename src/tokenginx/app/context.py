"""``g``: the request-scoped namespace, one per request, carried by a context variable.

Each request (HTTP or TCP) and each background task runs with its own namespace, so
concurrent requests never see each other's values, whether they run on the event loop
or in worker threads (the request's context is copied into the thread that runs a
sync handler). Outside any request ``g`` is unavailable (``RuntimeError``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

T = TypeVar("T")

_current: contextvars.ContextVar[SimpleNamespace | None] = contextvars.ContextVar(
    "tokenginx_app_g", default=None
)


class OutsideRequestContext(RuntimeError):
    """``g`` was used where no request (or background task) is being handled."""


def _ns() -> SimpleNamespace:
    ns = _current.get()
    if ns is None:
        raise OutsideRequestContext(
            "g is only available while a request or a background task is handled"
        )
    return ns


class _G:
    """Attribute access to the current request's namespace (``g.user = ...``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(_ns(), name)
        except AttributeError:
            raise AttributeError(f"g has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_ns(), name, value)

    def __delattr__(self, name: str) -> None:
        try:
            delattr(_ns(), name)
        except AttributeError:
            raise AttributeError(f"g has no attribute {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return hasattr(_ns(), name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(vars(_ns())))

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(_ns(), name, default)

    def setdefault(self, name: str, default: Any = None) -> Any:
        ns = _ns()
        if not hasattr(ns, name):
            setattr(ns, name, default)
        return getattr(ns, name)

    def pop(self, name: str, *default: Any) -> Any:
        ns = _ns()
        if hasattr(ns, name):
            value = getattr(ns, name)
            delattr(ns, name)
            return value
        if default:
            return default[0]
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(_ns()))

    def __repr__(self) -> str:
        ns = _current.get()
        return "<g (no request)>" if ns is None else f"<g {vars(ns)!r}>"


g = _G()


def active() -> bool:
    """True when ``g`` is usable here."""
    return _current.get() is not None


def begin(**values: Any) -> contextvars.Token[SimpleNamespace | None]:
    """Give the current context a fresh ``g`` (``end(token)`` restores the previous one).

    Each HTTP request runs in its own asyncio task, whose context is its own copy, so
    setting the variable there cannot be seen by any other request.
    """
    return _current.set(SimpleNamespace(**values))


def end(token: contextvars.Token[SimpleNamespace | None]) -> None:
    _current.reset(token)


def fresh_context(**values: Any) -> contextvars.Context:
    """A new context (sharing nothing with the caller's) holding a fresh ``g``."""
    ctx = contextvars.Context()
    ctx.run(_current.set, SimpleNamespace(**values))
    return ctx


def run_in_fresh_g(func: Callable[..., T], *args: Any, **values: Any) -> T:
    """``func(*args)`` with a fresh ``g`` built from ``values``, in a new context."""
    return fresh_context(**values).run(func, *args)


def current_request_id() -> str | None:
    ns = _current.get()
    return getattr(ns, "request_id", None) if ns is not None else None
