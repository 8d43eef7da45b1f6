"""Faults answer clear pages: 503 when the database cannot answer, a plain 500 otherwise.

The outage here is an engine pointed at a port where nothing listens (connection
refused); ``test_db_outage.py`` kills and restarts a real MariaDB server.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from portal.app import create_app
from portal.core.db import build_engine
from portal.core.errors import Busy
from portal.web.faults import UNAVAILABLE_MESSAGE, FaultBarrier
from tests.admin_html import csrf_token_of
from tests.factories import login, make_staff


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_engine():
    """An engine for a MySQL server that is not there: every connect is refused."""
    engine = build_engine(f"mysql+pymysql://root@127.0.0.1:{free_port()}/portal", pool_size=1)
    yield engine
    engine.dispose()


def assert_unavailable(response, *, within: float | None = None, started: float = 0.0) -> None:
    """Check ``response`` is the 503 page (and came within ``within`` s of ``started``)."""
    assert response.status_code == 503, response.text[:300]
    assert UNAVAILABLE_MESSAGE in response.text
    assert response.headers["retry-after"] == "60"
    assert "Traceback" not in response.text and "pymysql" not in response.text.lower()
    if within is not None:
        assert time.monotonic() - started < within


def test_admin_pages_answer_503_when_the_database_is_unreachable(client, engine, dead_engine):
    make_staff(engine, username="desk")
    assert login(client, "desk").status_code == 302
    with TestClient(create_app(dead_engine), follow_redirects=False) as down:
        down.cookies = client.cookies
        started = time.monotonic()
        assert_unavailable(down.get("/admin/patient/list"), within=5, started=started)
        assert_unavailable(down.get("/admin/"))
        token = csrf_token_of(down.get("/admin/login").text)  # the login page needs no database
        assert_unavailable(down.post("/admin/login", data={"username": "desk", "password": "x", "csrf_token": token}))


def test_portal_routes_answer_503_for_database_errors_and_busy(dead_engine):
    app = create_app(dead_engine)

    @app.get("/_test/query")
    def query():
        with dead_engine.connect() as conn:
            return {"one": conn.execute(text("SELECT 1")).scalar()}

    @app.get("/_test/busy")
    def busy():
        raise Busy()

    with TestClient(app) as client:
        assert_unavailable(client.get("/_test/query"))
        response = client.get("/_test/busy")
        assert response.status_code == 503
        assert "busy" in response.text and response.headers["retry-after"] == "5"


def test_unexpected_errors_answer_a_plain_500_and_are_logged_once(engine, caplog, monkeypatch):
    from views.patients import PatientView

    app = create_app(engine)

    @app.get("/_test/bug")
    def bug():
        raise ValueError("secret detail of a bug")

    async def broken_list(self, request):
        raise RuntimeError("secret detail inside the admin")

    monkeypatch.setattr(PatientView, "list", broken_list)
    make_staff(engine, username="desk")
    with TestClient(app, follow_redirects=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/_test/bug")
        assert response.status_code == 500
        assert "Something went wrong" in response.text and "secret" not in response.text
        assert login(client, "desk").status_code == 302
        response = client.get("/admin/patient/list")
        assert response.status_code == 500
        assert "Something went wrong" in response.text and "secret" not in response.text
    logged = [r for r in caplog.records if r.exc_info]
    assert [str(r.exc_info[1]) for r in logged] == ["secret detail of a bug", "secret detail inside the admin"]


def test_barrier_turns_a_sub_apps_500_into_503_when_the_database_was_the_cause():
    def endpoint(request):
        raise OperationalError("SELECT 1", {}, Exception("(2013) Lost connection"))

    bare = Starlette(routes=[Route("/", endpoint)])  # its own error middleware answers 500
    outer = Starlette()
    outer.mount("/sub", bare)
    with TestClient(FaultBarrier(outer)) as client:
        assert_unavailable(client.get("/sub/"))


def test_barrier_reraises_an_error_in_the_middle_of_a_response():
    async def chunks():
        yield b"first part"
        raise RuntimeError("stream broke")

    async def endpoint(request):
        return StreamingResponse(chunks())

    app = FaultBarrier(Starlette(routes=[Route("/", endpoint)]))
    with TestClient(app) as client, pytest.raises(RuntimeError, match="stream broke"):
        client.get("/")
