"""The composition root: builds the ASGI application from its two faces, the staff
admin (``views``) at /admin and the patient pages (``portal.patient_pages``) at /.

It is the only module that imports both faces; the faces import the services and the
core, never each other (``tests/test_layers.py`` checks every import of the tree).

Around it: :class:`portal.web.faults.FaultBarrier` (outermost; a fault is a 503 or plain
500 page, never a hang or a traceback), :class:`portal.web.limits.BodySizeLimit`
(request bodies above 1 MiB get 413) and strict security headers on every path
outside ``/admin``. The fault handlers are installed on the app and on the admin's
own sub-app.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy.engine import Engine

from portal.core.db import get_engine
from portal.core.settings import get_settings
from portal.web.faults import FaultBarrier, install_error_handlers
from portal.web.limits import BodySizeLimit

log = logging.getLogger(__name__)


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the portal application.

    Args:
        engine (Engine | None): database engine; the one for ``DATABASE_URL`` when omitted.

    Returns:
        FastAPI: the app, with the admin mounted at ``/admin`` and the patient pages at ``/``
        (strict security headers on every path outside ``/admin``), fault pages and the
        request body limit.
    """
    # The two faces, imported here only: this is the one module that knows both.
    from portal import patient_pages
    from portal.web.headers import SecurityHeadersMiddleware
    from views import create_admin

    engine = engine or get_engine()
    settings = get_settings()
    app = FastAPI(title=settings.hospital_name, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.get("/_ping", include_in_schema=False)
    def ping() -> PlainTextResponse:
        """A constant answer: the throughput ceiling for benchmarks."""
        return PlainTextResponse("ok")

    admin = create_admin(app, engine)
    if settings.portal_bench_plain_admin:  # benchmarks only: sqladmin's own list to compare with
        from views.plain_admin import mount_plain_admin

        install_error_handlers(mount_plain_admin(app, engine).admin)
    patient_pages.install(app)
    install_error_handlers(app)
    install_error_handlers(admin.admin)  # sqladmin's sub-app handles its own errors
    app.add_middleware(SecurityHeadersMiddleware, exclude_prefixes=(patient_pages.ADMIN_PREFIX,))
    app.add_middleware(BodySizeLimit)
    app.add_middleware(FaultBarrier)  # added last: the outermost of the portal's middleware
    return app
