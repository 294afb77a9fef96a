"""``HTTPRequest``: what an application HTTP handler receives.

Everything is read before the handler runs (the body within ``limits.http_body_bytes``),
so a sync handler in a worker thread never touches the event loop. ``json_data`` and
``form_data`` are parsed on first use; an invalid JSON body answers 400.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import Headers

from tokenginx.app.background import BackgroundTasks


@dataclass(frozen=True)
class FormFile:
    """A file field of a ``multipart/form-data`` body."""

    filename: str
    content_type: str
    data: bytes


class HTTPRequest:
    protocol = "http"

    def __init__(
        self,
        *,
        method: str,
        path: str,
        path_params: dict[str, Any],
        query_params: dict[str, str],
        headers: Headers,
        body: bytes,
        client_address: tuple[str, int],
        bg: BackgroundTasks,
        request_id: str,
        query_string: str = "",
        form: dict[str, Any] | None = None,
        principal: Any = None,
        caller: Callable[..., Any] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.path_params = path_params
        self.query_params = query_params
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.client_address = client_address
        self.bg = bg
        self.request_id = request_id
        self._form = form
        # The authenticated client of an ``auth=True`` route (None otherwise).
        self.principal = principal
        self._caller = caller

    def call(self, *argv: str | bytes | int | float) -> Any:
        """Run one store command through the gate: ``request.call("SETEX", "k", 60, "v")``.

        On an ``auth=True`` route it runs as the authenticated caller; on an open route
        as the application itself (trusted, like the built-in identity provider), so
        the handler decides what an anonymous caller may do. A refused command raises
        the REST API's error (409 WRONGTYPE, 507 OOM…); the reply is as redis-py
        without decoding gives it (bytes, int, list, None).
        """
        if self._caller is None:
            raise RuntimeError("this request has no access to the store")
        return self._caller(*argv)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @cached_property
    def json_data(self) -> Any:
        """The body parsed as JSON when it is declared as JSON (``application/json`` or
        ``+json``), else None. Invalid JSON raises a 400 answer."""
        ctype = self.content_type
        if not self.body or not (ctype == "application/json" or ctype.endswith("+json")):
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as e:
            from tokenginx.transport.http.envelope import invalid

            raise invalid("body", f"invalid JSON: {e}") from None

    @cached_property
    def form_data(self) -> dict[str, Any]:
        """Fields of an urlencoded or multipart form (files as :class:`FormFile`);
        ``{}`` for any other body. A repeated field keeps its last value."""
        if self._form is not None:
            return self._form
        if self.content_type != "application/x-www-form-urlencoded" or not self.body:
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            from tokenginx.transport.http.envelope import invalid

            raise invalid("body", "form data must be UTF-8") from None
        return dict(parse_qsl(text, keep_blank_values=True))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.path}>"
