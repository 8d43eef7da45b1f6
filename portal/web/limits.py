"""Request limits: a request body larger than the portal needs is refused early with 413.

The portal takes forms (logins, admin edits, bookings), never uploads (CSV import is
off), so 1 MiB is far above any honest request and far below what would tie up a
worker. The declared ``Content-Length`` is checked before the app runs; a body sent
without one (chunked) is counted as it streams and cut off at the limit.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 1024 * 1024


class RequestTooLarge(Exception):
    """Raised to the app by ``receive`` once the streamed body passes the limit."""


class BodySizeLimit:
    """Pure ASGI middleware refusing request bodies above ``max_body_bytes`` with 413.

    * A ``Content-Length`` above the limit is answered at once; the app never runs and
      the body is never read.
    * Otherwise the body is counted as the app reads it. Past the limit, ``receive``
      raises :class:`RequestTooLarge` in the app, whatever the app answers is dropped,
      and the client gets the 413 (unless the app had already started a response,
      which is then cut short).

    The 413 asks the server to close the connection, so an unread body is not parsed
    as the next request.

    Args:
        app (ASGIApp): the application to protect.
        max_body_bytes (int): the limit; bodies of exactly this size pass.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> PlainTextResponse:
        size = self.max_body_bytes
        limit = f"{size // 2**20:,} MiB" if size % 2**20 == 0 else f"{size:,} bytes"
        return PlainTextResponse(
            f"The request is too large: this portal accepts at most {limit}.\n",
            status_code=413, headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1  # malformed: the server refuses it; count what arrives
                if declared > self.max_body_bytes:
                    await self._too_large()(scope, receive, send)
                    return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise RequestTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise RequestTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's own answer to a cut-off body; the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._too_large()(scope, receive, send)
