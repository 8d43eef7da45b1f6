"""The composition root: builds the ASGI application from its two faces, the staff
admin (``views``) at /admin and the patient pages (``portal.patient_pages``) at /.

It is the only module that imports both faces; the faces import the services and the
core, never each other (``tests/test_layers.py`` checks every import of the tree).

Around it, outermost first: security headers on every response
(:class:`portal.web.headers.SecurityHeadersMiddleware`: the patient pages' strict policy,
the admin's policy with a per-response script nonce under ``/admin``),
:class:`portal.web.faults.FaultBarrier` (a fault is a 503 or plain 500 page, never a hang or
a traceback), :class:`portal.web.limits.BodySizeLimit` (request bodies above 1 MiB get 413)
and :class:`portal.web.origin.SameOriginGuard` (a state-changing admin request sent by
another site gets 403). The admin's CSRF token check sits inside the admin, behind its
session cookie (``views._csrf_guard``). The fault handlers are installed on the app and on
the admin's own sub-app.
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
        FastAPI: the app, with the admin mounted at ``/admin`` and the patient pages at ``/``,
        security headers on every response, fault pages, the request body limit and the
        admin's same-origin check.
    """
    # The two faces, imported here only: this is the one module that knows both.
    from portal import patient_pages
    from portal.web.headers import SecurityHeadersMiddleware
    from portal.web.origin import SameOriginGuard
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
    admin_prefixes = (patient_pages.ADMIN_PREFIX, "/plain-admin")
    app.add_middleware(SameOriginGuard, prefixes=admin_prefixes)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(FaultBarrier)
    # added last: the outermost, so fault pages, 413s and 403s carry the headers too
    app.add_middleware(SecurityHeadersMiddleware, admin_prefixes=admin_prefixes)
    return app
