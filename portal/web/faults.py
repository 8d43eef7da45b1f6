"""Faults become clear pages: database down gives 503, anything unexpected a plain 500.

Three layers, so that no request hangs or shows a traceback:

* :func:`install_error_handlers` registers exception handlers on a Starlette app: the
  portal's FastAPI app and the admin's own sub-app (sqladmin mounts a separate Starlette
  application with its own handlers and error middleware, so handlers on the outer app
  alone never see its errors cleanly).
* :class:`FaultBarrier`, a pure ASGI middleware around the app, catches whatever still
  escapes before a response has started, and replaces a 500 produced by an inner
  error middleware when the exception behind it turns out to be a database outage.
* The engine's short connect timeout and ``pool_pre_ping`` (``portal.core.db``) make a dead
  server fail fast and let the portal recover by itself once the server is back.

The 503 page carries ``Retry-After``; the 500 page says nothing of the cause (it is
logged with its traceback instead).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.core.errors import Busy

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = "The system is briefly unavailable; please try again in a minute."
ERROR_MESSAGE = "Something went wrong on our side. It has been logged; please try again."
UNAVAILABLE_RETRY_AFTER = 60
BUSY_RETRY_AFTER = 5

#: Exceptions that mean "the database cannot answer now", not "the request is wrong".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, DisconnectionError, PoolTimeout,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The database outage (or ``Busy``) behind ``exc``, if there is one.

    Args:
        exc (BaseException): an exception raised while serving a request.

    Returns:
        BaseException | None: ``exc`` or the exception in its cause/context chain that is
        a ``Busy``, an OperationalError/InterfaceError/disconnect/pool timeout, or a
        DBAPI error whose connection was invalidated; None when there is none.
    """
    for item in _chain(exc):
        if isinstance(item, (Busy, *UNAVAILABLE_ERRORS)):
            return item
        if isinstance(item, DBAPIError) and item.connection_invalidated:
            return item
    return None


def _page(title: str, message: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;"
        "padding:0 1rem;color:#222}h1{font-size:1.4rem}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )


def unavailable_response(exc: BaseException | None = None) -> HTMLResponse:
    """The 503 page for a database outage (or ``Busy``), with ``Retry-After``.

    Args:
        exc (BaseException | None): the cause; a ``Busy`` gets its own message and a
            shorter ``Retry-After``.

    Returns:
        HTMLResponse: status 503, ``Retry-After`` and ``Cache-Control: no-store``.
    """
    if isinstance(exc, Busy):
        message, retry = exc.message, BUSY_RETRY_AFTER
    else:
        message, retry = UNAVAILABLE_MESSAGE, UNAVAILABLE_RETRY_AFTER
    return HTMLResponse(
        _page("Service briefly unavailable", message), status_code=503,
        headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
    )


def error_response() -> HTMLResponse:
    """The plain 500 page: no detail of the cause (that goes to the log)."""
    return HTMLResponse(_page("Something went wrong", ERROR_MESSAGE), status_code=500,
                        headers={"Cache-Control": "no-store"})


def _log_unavailable(request_path: str, exc: BaseException) -> None:
    cause = unavailable_cause(exc) or exc
    detail = getattr(cause, "orig", None) or cause
    log.warning("database unavailable while serving %s: %s: %s", request_path,
                type(cause).__name__, detail)


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    _log_unavailable(request.url.path, exc)
    return unavailable_response(unavailable_cause(exc) or exc)


async def _last_resort_handler(request: Request, exc: Exception) -> Response:
    # Runs in Starlette's ServerErrorMiddleware, which re-raises afterwards: the
    # FaultBarrier logs the traceback then, so it is logged once.
    if unavailable_cause(exc) is not None:
        return unavailable_response(unavailable_cause(exc))
    return error_response()


def install_error_handlers(app: Starlette) -> None:
    """Register the portal's fault handlers on ``app`` (before its first request).

    Database outages (OperationalError, InterfaceError, disconnects, pool timeouts) and
    ``Busy`` answer the 503 page; any other unhandled exception answers the plain 500
    page. Call it for the FastAPI app and for every mounted sub-app with its own
    exception handling (the sqladmin admin).

    Args:
        app (Starlette): a Starlette or FastAPI application.
    """
    for exc_class in (*UNAVAILABLE_ERRORS, Busy):
        app.add_exception_handler(exc_class, _unavailable_handler)
    app.add_exception_handler(Exception, _last_resort_handler)


class FaultBarrier:
    """Pure ASGI middleware: no exception leaves the app as a hang or a traceback.

    * An exception raised before the response started answers the 503 page (database
      outage or ``Busy`` anywhere in its chain) or the plain 500 page; it is logged.
    * A 500 response is held back until the app returns: if the app then raises (as
      Starlette's error middleware does after answering, in a mounted sub-app too), the
      held 500 is replaced by the right page. Other responses pass straight through.
    * An exception after a response was complete is logged and swallowed (the client
      has its answer); one in the middle of a streamed response is re-raised, so the
      server drops the connection rather than send a truncated page as whole.

    Args:
        app (ASGIApp): the application to guard.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = completed = False
        held: list[Message] = []

        async def guarded_send(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start" and message["status"] == 500:
                held.append(message)
                return
            if held:
                held.append(message)
                return
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            path = scope.get("path", "")
            if started and not completed:
                log.error("error in the middle of the response to %s", path, exc_info=exc)
                raise
            if unavailable_cause(exc) is not None:
                _log_unavailable(path, exc)
                response = unavailable_response(unavailable_cause(exc))
            else:
                log.error("unhandled error while serving %s", path, exc_info=exc)
                response = error_response()
            if not started:
                await response(scope, receive, send)
            return
        for message in held:
            await send(message)
