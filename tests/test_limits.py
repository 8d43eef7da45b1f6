"""Request bodies above 1 MiB are refused with 413, before the app reads them."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from portal.app import create_app
from portal.web.limits import MAX_BODY_BYTES, BodySizeLimit


def test_declared_oversized_body_is_refused_before_the_app_runs(engine):
    app = create_app(engine)
    calls = []

    @app.post("/_test/echo")
    async def echo(request: Request):
        calls.append(1)
        return PlainTextResponse(str(len(await request.body())))

    with TestClient(app) as client:
        response = client.post("/_test/echo", content=b"x" * (MAX_BODY_BYTES + 1))
        assert response.status_code == 413
        assert "too large" in response.text and "1 MiB" in response.text
        assert response.headers["connection"] == "close"
        assert calls == []

        response = client.post("/admin/login", data={"username": "u", "password": "p" * MAX_BODY_BYTES})
        assert response.status_code == 413

        response = client.post("/_test/echo", content=b"x" * MAX_BODY_BYTES)
        assert response.status_code == 200 and response.text == str(MAX_BODY_BYTES)


def test_streamed_body_without_length_is_cut_off_at_the_limit(engine):
    app = create_app(engine)

    @app.post("/_test/echo")
    async def echo(request: Request):
        return PlainTextResponse(str(len(await request.body())))

    def chunks(total: int):
        for _ in range(total // 65536):
            yield b"y" * 65536

    with TestClient(app) as client:
        response = client.post("/_test/echo", content=chunks(2 * MAX_BODY_BYTES))  # chunked, no length
        assert response.status_code == 413
        response = client.post("/_test/echo", content=chunks(MAX_BODY_BYTES // 2))
        assert response.status_code == 200


def test_counting_stops_reading_and_replaces_the_apps_answer():
    """At the ASGI level: the app sees the error on the first chunk past the limit."""
    read = []

    async def app(scope, receive, send):
        try:
            while True:
                message = await receive()
                read.append(len(message["body"]))
                if not message.get("more_body"):
                    break
        except Exception:
            await PlainTextResponse("app's own error page", status_code=400)(scope, receive, send)
            return
        await PlainTextResponse("ok")(scope, receive, send)

    chunk = b"z" * 1000
    incoming = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(10)]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(BodySizeLimit(app, max_body_bytes=3500)(scope, receive, send))
    assert read == [1000, 1000, 1000]  # the fourth chunk crossed the limit
    assert sent[0]["status"] == 413
    assert b"at most 3,500 bytes" in sent[1]["body"]
    assert len(incoming) == 6
