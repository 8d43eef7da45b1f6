"""Patient booking pages at ``/``: find a doctor, book, look a booking up and cancel it.

``install(app)`` adds the pages, their stylesheet at ``/static`` and a friendly 404 page
for unknown paths outside the admin. See :mod:`portal.patient_pages.routes`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from portal.patient_pages.page_cache import PageCache, VersionWatch
from portal.patient_pages.routes import STATIC_DIR, Page, router

#: Paths that belong to the staff admin (its own pages and error handling).
ADMIN_PREFIX = "/admin"


def install(app: FastAPI) -> None:
    """Mount the patient pages on ``app``.

    Adds the router (``/``, ``/departments/...``, ``/book/...``, ``/booked/...``,
    ``/booking...``, ``/language/...``), the static files at ``/static`` and a handler
    that answers unknown paths outside ``/admin`` with the patient 404 page.

    Args:
        app (FastAPI): the portal application (its ``state.engine`` is the database); gets
            ``state.page_cache`` and ``state.version_watch`` (:mod:`portal.patient_pages.page_cache`).
    """
    app.state.page_cache = PageCache()
    app.state.version_watch = VersionWatch(app.state.engine)
    app.router.on_shutdown.append(app.state.version_watch.close)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="booking-static")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(ADMIN_PREFIX):
            return PlainTextResponse("Not Found", status_code=404)
        return Page.of(request).not_found()

    app.add_exception_handler(404, not_found)
