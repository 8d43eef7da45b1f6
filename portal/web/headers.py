"""Security headers for the patient pages (a small ASGI middleware).

The strict Content-Security-Policy forbids inline scripts and styles, so it is applied
to every path except those of the staff admin (sqladmin's pages use inline scripts).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The Content-Security-Policy of the patient pages.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: Headers added to every response outside the excluded prefixes.
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeadersMiddleware:
    """Add :data:`SECURITY_HEADERS` to HTTP responses whose path is not excluded.

    Args:
        app (ASGIApp): the wrapped application.
        exclude_prefixes (Iterable[str]): path prefixes left alone (e.g. ``("/admin",)``).
            A header the response already sets is not replaced.
    """

    def __init__(self, app: ASGIApp, exclude_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.exclude = tuple(exclude_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or any(path == p or path.startswith(p + "/") for p in self.exclude):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
