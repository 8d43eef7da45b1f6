"""A real database outage: the portal answers 503 quickly and recovers by itself.

The tests start their own MariaDB server (own data directory under tmp, own free port,
``--no-defaults``; the shared server is never touched) and serve the portal on it. One
kills the server process, checks that pages answer the 503 page within seconds, starts
the server again and checks that the same portal process serves pages again. The other
freezes the server (SIGSTOP: its port still accepts connections, nothing answers), checks
that a real portal server (``python main.py``) answers the 503 page before an HTTP client
with a 20 s timeout gives up, and serves again once the database runs again (SIGCONT).

It runs in the MariaDB pass (``TEST_DATABASE_URL`` set), where missing MariaDB server
binaries are a failure, not a skip; the SQLite pass skips it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pymysql
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from portal.app import create_app
from portal.core import schema
from portal.core.db import build_engine
from portal.web.faults import UNAVAILABLE_MESSAGE
from tests.factories import login, make_staff
from tests.live_server import LiveServer

pytestmark = pytest.mark.mariadb_server

_SBIN = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])
MARIADBD = shutil.which("mariadbd", path=_SBIN) or shutil.which("mysqld", path=_SBIN)
INSTALL_DB = shutil.which("mariadb-install-db", path=_SBIN) or shutil.which("mysql_install_db", path=_SBIN)
#: Keep the throwaway server small: 16 MiB buffer pool, 8 MiB redo log, no binlog.
SMALL = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--skip-log-bin"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateMariaDB:
    """A throwaway MariaDB server on its own port and data directory.

    Args:
        base (Path): an empty directory for its data, socket, pid file and error log.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def install(self) -> None:
        """Create the system tables (root without password, as on the shared server)."""
        subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db", *SMALL],
            check=True, capture_output=True, timeout=120,
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start ``mariadbd`` and return once it accepts connections (polled, not slept)."""
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.base / 'mysqld.sock'}",
             f"--pid-file={self.base / 'mariadbd.pid'}", f"--log-error={self.base / 'error.log'}",
             "--user=root", *SMALL],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the private MariaDB exited with {self.proc.returncode}:\n{self.error_log()}")
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the private MariaDB did not answer within {timeout:.0f} s:\n{self.error_log()}")
                time.sleep(0.1)

    def freeze(self) -> None:
        """Stop the server process (SIGSTOP): it keeps its port and accepted sockets but
        answers nothing, as a hung or swapping server would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill the server process outright (SIGKILL), as a crash would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Shut the server down if it runs (SIGTERM, then SIGKILL after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}"

    def error_log(self) -> str:
        """The end of the server's error log (for failure messages)."""
        path = self.base / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no error log)"


@pytest.fixture(scope="module")
def _mariadb_server(tmp_path_factory):
    """A private MariaDB server for this module's tests, shut down and deleted after them."""
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("starts its own MariaDB server: runs in the MariaDB pass (TEST_DATABASE_URL set)")
    if not (MARIADBD and INSTALL_DB):
        pytest.fail("the MariaDB pass needs the MariaDB server binaries (mariadbd, mariadb-install-db): "
                    "install mariadb-server")
    base = tmp_path_factory.mktemp("mariadb")
    server = PrivateMariaDB(base)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.thaw()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def private_mariadb(_mariadb_server):
    """The private MariaDB server, running (started again if a test left it killed, let
    run again if one left it frozen); each test creates its own database on it."""
    server = _mariadb_server
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    try:
        yield server
    finally:
        server.thaw()


def assert_503_quickly(client: TestClient, path: str, *, within: float = 5.0) -> None:
    """GET ``path`` and check it answers the 503 page within ``within`` seconds."""
    started = time.monotonic()
    response = client.get(path)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, f"{path}: {response.status_code} {response.text[:300]}"
    assert UNAVAILABLE_MESSAGE in response.text
    assert response.headers["retry-after"] == "60"
    assert elapsed < within, f"{path} took {elapsed:.1f} s to answer while the database was down"


def test_pages_answer_503_while_the_database_is_down_and_recover_by_themselves(private_mariadb):
    server = private_mariadb
    url = server.create_database("portal")
    schema.upgrade(url)
    engine = build_engine(url, pool_size=2)
    try:
        make_staff(engine, username="desk")
        app = create_app(engine)

        @app.get("/_test/patients")
        def patients():
            with engine.connect() as conn:
                return {"patients": conn.execute(text("SELECT COUNT(*) FROM patient")).scalar_one()}

        with TestClient(app, follow_redirects=False) as client:
            assert login(client, "desk").status_code == 302
            assert client.get("/admin/patient/list").status_code == 200
            assert client.get("/_test/patients").json() == {"patients": 0}

            server.kill()  # the pool still holds connections to the dead server
            for path in ("/admin/patient/list", "/admin/", "/_test/patients", "/admin/patient/list"):
                assert_503_quickly(client, path)
            response = client.post("/admin/login", data={"username": "desk", "password": "whatever"})
            assert response.status_code == 503

            server.start()  # same data directory and port; the portal is not restarted
            response = client.get("/admin/patient/list")
            assert response.status_code == 200, response.text[:300]
            assert client.get("/_test/patients").json() == {"patients": 0}
    finally:
        engine.dispose()


#: The client gives up after this many seconds: far more than the portal needs to answer
#: a frozen database (a 3 s ping, then a 3 s greeting), far less than the minute it took
#: when a frozen server made it wait the whole read timeout twice.
CLIENT_TIMEOUT = 20


def test_a_frozen_database_gets_the_unavailable_page_and_the_portal_recovers(private_mariadb, tmp_path):
    server = private_mariadb
    url = server.create_database("frozen")
    schema.upgrade(url)
    portal = LiveServer(url, tmp_path / "portal.log", workers=1)
    try:
        portal.start()
        with httpx.Client(base_url=portal.base_url, timeout=CLIENT_TIMEOUT, follow_redirects=False) as client:
            assert client.get("/").status_code == 200  # the worker now holds a pooled connection
            server.freeze()
            try:
                for path in ("/", "/departments/CARD", "/", "/book/1"):
                    # a ReadTimeout here means the portal waited as long as the client
                    response = client.get(path)
                    assert response.status_code == 503, f"{path}: {response.status_code} {response.text[:300]}"
                    assert int(response.headers["retry-after"]) > 0
            finally:
                server.thaw()
            assert client.get("/").status_code == 200  # the same worker, the same pool
    finally:
        portal.stop()
    assert "(timed out)" in portal.log_path.read_text()  # the ping or greeting timed out, and it was logged
