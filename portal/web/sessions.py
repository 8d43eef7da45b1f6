"""A signed-cookie session whose ``Secure`` flag follows the request's scheme.

Starlette's ``SessionMiddleware`` decides ``Secure`` once, from ``https_only``. Behind a
TLS-terminating proxy the portal speaks plain HTTP, and uvicorn's proxy-header handling
(for the addresses in ``FORWARDED_ALLOW_IPS`` only) sets the request's scheme to the
one the proxy reports. :class:`SchemeSecureSession` marks the cookie ``Secure`` whenever
that scheme is ``https``, and always when ``always_secure`` is set (``SECURE_COOKIES``).
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class SchemeSecureSession:
    """Starlette's session middleware, ``Secure`` per request (see the module docstring).

    Args:
        app (ASGIApp): the wrapped application.
        always_secure (bool): mark the cookie ``Secure`` on plain HTTP requests too.
        **session_kwargs (Any): ``SessionMiddleware``'s arguments (``secret_key``,
            ``session_cookie``, ``max_age``, ``same_site``...), except ``https_only``.
    """

    def __init__(self, app: ASGIApp, *, always_secure: bool = False, **session_kwargs: Any) -> None:
        session_kwargs.pop("https_only", None)
        self.secure = SessionMiddleware(app, https_only=True, **session_kwargs)
        self.plain = self.secure if always_secure else SessionMiddleware(app, https_only=False, **session_kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await inner(scope, receive, send)
