"""Response types a handler may return besides a dict, a list, a string or a
``(body, status)`` tuple. They hold data only; each door turns them into its wire
format (see ``transport/http/app_routes.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable
from typing import Any

import orjson


class HTTPJSONResponse:
    """JSON with an explicit status, headers and (optionally) a ``json.JSONEncoder``."""

    def __init__(
        self,
        data: Any = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        json_encoder: type[json.JSONEncoder] | None = None,
    ) -> None:
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status!r}")
        self.data = data
        self.status = status
        self.headers = dict(headers or {})
        self.json_encoder = json_encoder

    def render(self) -> bytes:
        if self.json_encoder is not None:
            return json.dumps(self.data, cls=self.json_encoder, ensure_ascii=False).encode("utf-8")
        return orjson.dumps(self.data)

    def __repr__(self) -> str:
        return f"HTTPJSONResponse(status={self.status}, data={self.data!r})"


class StreamResponse:
    """A body produced piece by piece (``str`` or ``bytes`` chunks), sent as it comes:
    server-sent events, NDJSON, chunked downloads. A sync iterator is advanced in a
    worker thread, so a generator may block (sleep, read a file) between chunks."""

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        status: int = 200,
    ) -> None:
        if not (hasattr(content, "__iter__") or hasattr(content, "__aiter__")):
            raise TypeError("StreamResponse content must be an iterable or an async iterable")
        if isinstance(content, (str, bytes)):
            content = [content]
        self.content = content
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.status = status

    def __repr__(self) -> str:
        return f"StreamResponse(content_type={self.content_type!r})"
