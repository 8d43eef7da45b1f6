"""The CSRF token check of every state-changing admin request (an ASGI middleware).

sqladmin's own routes (create, edit, delete, import, login, logout) check no token, and a
new route should not have to remember to. :class:`CsrfGuard` runs inside the admin's
session middleware (it needs the signed session) and, for every POST, PUT, PATCH and
DELETE, takes the token from the ``X-CSRF-Token`` header or else from the ``csrf_token``
field of the posted form (``application/x-www-form-urlencoded`` or ``multipart/form-data``).
The body is read once here and handed on unchanged to the route. Without a valid token
(``views._csrf.csrf_valid``) the answer is 403 with one plain sentence and nothing runs.

The workflow actions and custom pages still check the token themselves too
(``ActionsMixin.require_csrf``): harmless, and they stay safe on their own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.web.origin import UNSAFE_METHODS
from views._csrf import FIELD, HEADER, csrf_valid

#: The sentence of the 403 answer.
REFUSED = (
    "Refused: this form has expired or did not come from this site, so nothing was changed. "
    "Go back, reload the page and try again."
)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read_body(receive: Receive) -> tuple[list[Message], bool]:
    """Every body message of the request; False when the client went away first."""
    messages: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return messages, False
        messages.append(message)
        if not message.get("more_body", False):
            return messages, True


async def _form_token(scope: Scope, messages: list[Message]) -> object:
    """The ``csrf_token`` field of the buffered form body, or None."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else {"type": "http.request", "body": b"", "more_body": False}

    request = Request(scope, replay)
    try:
        form = await request.form(max_files=1000, max_fields=1000)
    except Exception:  # a malformed body has no token; the route would refuse it anyway
        return None
    try:
        return form.get(FIELD)
    finally:
        await form.close()


class CsrfGuard:
    """Refuse (403) a state-changing admin request without a valid CSRF token.

    Args:
        app (ASGIApp): the admin's application, inside its session middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET").upper() not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token: object = request.headers.get(HEADER)
        app_receive = receive
        if not token:
            messages, complete = await _read_body(receive)
            if not complete:
                return
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            token = await _form_token(scope, messages) if content_type in _FORM_TYPES else None
            pending = list(messages)

            async def app_receive() -> Message:
                if pending:
                    return pending.pop(0)
                return await receive()  # after the body: wait for the disconnect

        if not csrf_valid(request, token):
            await PlainTextResponse(REFUSED, status_code=403)(scope, app_receive, send)
            return
        await self.app(scope, app_receive, send)
