"""Security headers for every response: one small ASGI middleware, two policies.

* The patient pages get a strict Content-Security-Policy: no inline script or style.
* The staff admin (paths under the admin prefixes) gets a policy made for sqladmin's
  pages: scripts only from the site itself or inline ``<script nonce=...>`` blocks
  carrying this response's nonce (a fresh random value per request, put in
  ``scope["state"]["csp_nonce"]`` so templates read it as ``request.state.csp_nonce``);
  ``style-src`` allows ``'unsafe-inline'`` because sqladmin's templates and its JavaScript
  libraries (Tabler, select2, flatpickr) set ``style=`` attributes; scripts never do.

Both forbid framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), content
sniffing and cross-site referrers. The headers are added to whatever the app answers:
pages, exports, redirects, error pages and the fault pages (the middleware is the
outermost of the portal's). A header the response already sets is not replaced.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The Content-Security-Policy of the patient pages.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: The admin's policy; ``{nonce}`` is replaced per response. Inline styles are allowed
#: (``style=`` attributes in sqladmin's markup and its libraries); inline scripts are not,
#: unless they carry the nonce. Fonts and icons may be data: URIs (Font Awesome, Tabler).
ADMIN_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: Headers added to every response besides the Content-Security-Policy.
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

#: Every header of a patient page (kept for callers that list them).
SECURITY_HEADERS = ((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *COMMON_HEADERS)

#: Key of the per-request nonce in ``scope["state"]``.
NONCE_KEY = "csp_nonce"


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response (see the module docstring).

    Args:
        app (ASGIApp): the wrapped application.
        admin_prefixes (Iterable[str]): path prefixes answered with the admin's policy
            (e.g. ``("/admin",)``); every other path gets the patient pages' policy.
    """

    def __init__(self, app: ASGIApp, admin_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.admin_prefixes = tuple(admin_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _under(scope.get("path", ""), self.admin_prefixes):
            nonce = secrets.token_urlsafe(18)
            scope.setdefault("state", {})[NONCE_KEY] = nonce
            policy = ADMIN_CONTENT_SECURITY_POLICY.format(nonce=nonce).encode()
        else:
            policy = CONTENT_SECURITY_POLICY.encode()
        added = ((b"content-security-policy", policy), *COMMON_HEADERS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in added if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
