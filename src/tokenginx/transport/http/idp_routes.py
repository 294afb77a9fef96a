"""The HTTP face of the built-in identity provider, mounted when ``server.idp`` is on.

Each module below contributes its part: ``endpoints(idp, door)`` gives JSON API
:class:`Endpoint` declarations (wrapped and documented like the rest of /api/v1);
``routes(idp, metrics)`` gives raw Starlette routes (HTML pages, OAuth/OIDC and CAS
protocol endpoints, which answer in their own protocol's conventions).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from tokenginx.idp import IdP
    from tokenginx.transport.http.calls import Door
    from tokenginx.transport.http.endpoints import Endpoint
    from tokenginx.transport.http.metrics import Metrics

MODULES = (
    "tokenginx.transport.http.api_auth",
    "tokenginx.transport.http.oauth_server",
    "tokenginx.transport.http.oauth_browser",
    "tokenginx.transport.http.cas_server",
)


def _contributions(part: str, *args: object) -> list:
    """What every module's ``part`` function (``endpoints`` or ``routes``) gives."""
    out: list = []
    for name in MODULES:
        build = getattr(import_module(name), part, None)
        if build is not None:
            out += build(*args)
    return out


def endpoints(idp: IdP, door: Door) -> list[Endpoint]:
    return _contributions("endpoints", idp, door)


def routes(idp: IdP, metrics: Metrics) -> list[BaseRoute]:
    return _contributions("routes", idp, metrics)
