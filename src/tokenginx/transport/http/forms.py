"""HTML form bodies of the sign-in pages (OAuth login/consent/logout, CAS login).

Starlette's ``request.form()`` reads an urlencoded body whole, however big; these
pages are public, so the body is read within a bound and parsed here.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request

# A sign-in form carries a few fields plus the authorization request: far below this.
FORM_LIMIT = 64 * 1024

URLENCODED = "application/x-www-form-urlencoded"


class FormError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request, limit: int = FORM_LIMIT) -> FormData:
    """The POSTed ``application/x-www-form-urlencoded`` fields (repeats kept, in order)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype and ctype != URLENCODED:
        raise FormError(415, "The form must be sent as application/x-www-form-urlencoded.")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise FormError(413, "The form is too large.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FormError(413, "The form is too large.")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, "The form is not valid UTF-8.") from None
    return FormData(parse_qsl(text, keep_blank_values=True, max_num_fields=1000))
