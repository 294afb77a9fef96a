"""Handler return values → HTTP responses."""

from __future__ import annotations

import orjson
import pytest
from starlette.responses import PlainTextResponse, StreamingResponse

from tokenginx.app.responses import HTTPJSONResponse, StreamResponse
from tokenginx.transport.http.app_routes import to_response


def test_dict_and_list_are_json():
    r = to_response({"a": 1})
    assert r.status_code == 200 and r.media_type == "application/json" and orjson.loads(r.body) == {"a": 1}
    assert orjson.loads(to_response([1, 2]).body) == [1, 2]


def test_tuples():
    r = to_response(({"error": "Access denied"}, 403))
    assert r.status_code == 403 and orjson.loads(r.body) == {"error": "Access denied"}
    r = to_response(("made", 201, {"Location": "/x"}))
    assert r.status_code == 201 and r.headers["location"] == "/x" and r.body == b"made"
    r = to_response((None, 204))
    assert r.status_code == 204 and r.body == b"" and "content-length" not in r.headers
    with pytest.raises(TypeError):
        to_response(({}, "200"))
    with pytest.raises(ValueError):
        to_response(({}, 99))


def test_scalars():
    assert to_response("hi").body == b"hi"
    assert to_response("hi").headers["content-type"].startswith("text/plain")
    assert to_response(b"\x00").media_type == "application/octet-stream"
    assert to_response(None).status_code == 204


def test_http_json_response():
    r = to_response(HTTPJSONResponse({"e": 1}, status=404, headers={"X-Error-Type": "NotFound"}))
    assert r.status_code == 404 and r.headers["x-error-type"] == "NotFound"
    # an explicit Content-Type header is not duplicated
    r = to_response(HTTPJSONResponse({}, headers={"Content-Type": "application/json"}))
    assert [k for k, _ in r.raw_headers].count(b"content-type") == 1
    with pytest.raises(ValueError):
        HTTPJSONResponse({}, status=1000)


def test_stream_response():
    r = to_response(StreamResponse(iter(["a", "b"]), content_type="text/event-stream", headers={"X": "1"}))
    assert isinstance(r, StreamingResponse) and r.media_type == "text/event-stream" and r.headers["x"] == "1"
    with pytest.raises(TypeError):
        StreamResponse(42)  # type: ignore[arg-type]


def test_starlette_response_passes_through():
    r = PlainTextResponse("x")
    assert to_response(r) is r


def test_unserialisable_value_is_a_type_error():
    with pytest.raises(TypeError, match="JSON"):
        to_response({"x": object()})
