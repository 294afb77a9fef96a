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


def endpoints(idp: IdP, door: Door) -> list[Endpoint]:
    out: list[Endpoint] = []
    for name in MODULES:
        module = import_module(name)
        if hasattr(module, "endpoints"):
            out += module.endpoints(idp, door)
    return out


def routes(idp: IdP, metrics: Metrics) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for name in MODULES:
        module = import_module(name)
        if hasattr(module, "routes"):
            out += module.routes(idp, metrics)
    return out
