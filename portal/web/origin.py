"""Refuse state-changing requests that another site's page sent (an ASGI middleware).

A browser names where a request comes from: ``Origin`` on every POST/PUT/PATCH/DELETE,
and ``Sec-Fetch-Site`` (``same-origin``, ``same-site``, ``cross-site``, ``none``) in current
browsers. A state-changing request under the guarded prefixes is refused with 403 and
one plain sentence, before the application sees it (so nothing is changed), when

* ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site`` (``same-site`` is another origin
  of the same registrable domain, e.g. a sibling subdomain), or
* ``Origin`` is present and is not this site's own origin: the request's scheme (as
  uvicorn's proxy-header handling set it for a trusted proxy) and its ``Host``.

A request naming neither (an old client, a script) passes to the CSRF token check,
which every state-changing admin request also needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: Methods that may change something.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _normal_origin(scheme: str, host: str) -> str:
    scheme, host = scheme.lower(), host.lower()
    if ":" in host and not host.endswith("]"):
        name, _, port = host.rpartition(":")
        if _DEFAULT_PORTS.get(scheme) == port:
            host = name
    return f"{scheme}://{host}"


def own_origin(scope: Scope) -> str:
    """This site's origin as the request sees it, e.g. ``https://portal.example.org``.

    Args:
        scope (Scope): an HTTP scope (its ``scheme`` and ``Host`` header).

    Returns:
        str: scheme and host, lower case, without a default port.
    """
    host = Headers(scope=scope).get("host") or ""
    if not host and scope.get("server"):
        name, port = scope["server"]
        host = f"{name}:{port}" if port else str(name)
    return _normal_origin(scope.get("scheme", "http"), host)


def cross_origin_reason(scope: Scope) -> str | None:
    """Why ``scope``'s request must be refused as coming from another site, or None.

    Args:
        scope (Scope): an HTTP scope.

    Returns:
        str | None: a sentence naming the refused header; None when the request is from
        this site or does not say where it is from.
    """
    headers = Headers(scope=scope)
    site = (headers.get("sec-fetch-site") or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Refused: this request was sent by another site (Sec-Fetch-Site: {site}). Nothing was changed."
    origin = headers.get("origin")
    if origin is not None:
        scheme, sep, rest = origin.strip().partition("://")
        if not sep or _normal_origin(scheme, rest.rstrip("/")) != own_origin(scope):
            shown = origin[:100]
            return f"Refused: this request was sent by another site (Origin: {shown}). Nothing was changed."
    return None


class SameOriginGuard:
    """Answer 403 to a state-changing request from another site (see the module docstring).

    Args:
        app (ASGIApp): the wrapped application.
        prefixes (Iterable[str]): path prefixes guarded, e.g. ``("/admin",)``.
    """

    def __init__(self, app: ASGIApp, prefixes: Iterable[str]) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET").upper() in UNSAFE_METHODS:
            path = scope.get("path", "")
            if any(path == p or path.startswith(p + "/") for p in self.prefixes):
                reason = cross_origin_reason(scope)
                if reason is not None:
                    await PlainTextResponse(reason, status_code=403)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
