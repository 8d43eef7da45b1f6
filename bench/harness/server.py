"""A real portal server for a benchmark: ``python main.py --workers N --port P --no-demo``.

Used as a context manager::

    with PortalServer(db, workers=2) as server:
        run_wrk(server.base_url, ["/_ping"], ...)

The server runs in its own process group; on exit it gets SIGTERM (uvicorn stops its
workers), then SIGKILL for the whole group after a grace period.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bench.harness.console import say
from bench.harness.database import BenchDatabase
from bench.harness.machine import ROOT

LOG_DIR = ROOT / "bench" / "results"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortalServer:
    """A portal process on the benchmark database.

    Args:
        db (BenchDatabase): the database (its URL, secret and demo password go in the environment).
        workers (int): uvicorn worker processes (``--workers``).
        port (int | None): TCP port; a free one when omitted.
        env (dict[str, str] | None): extra environment (e.g. ``{"DB_POOL_SIZE": "5"}``), on top of
            the current environment and the database's.
        name (str): used in the log file name ``bench/results/server-<name>.log``.
        start_timeout (float): seconds to wait for ``/_ping``.

    Attributes:
        base_url (str): ``http://127.0.0.1:<port>``.
        log_path (Path): the server's stdout and stderr.
        pid (int | None): the server's main process id (after start).
    """

    def __init__(self, db: BenchDatabase, *, workers: int = 1, port: int | None = None,
                 env: dict[str, str] | None = None, name: str = "portal", start_timeout: float = 90):
        self.db = db
        self.workers = workers
        self.port = port or free_port()
        self.env = env or {}
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path: Path = LOG_DIR / f"server-{name}.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The main process id (None before :meth:`start`)."""
        return self._proc.pid if self._proc else None

    def start(self) -> "PortalServer":
        """Start the server and wait until ``/_ping`` answers.

        Raises:
            SystemExit: the process ended during start-up or did not answer in time (see its log).
        """
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.db.env(), **self.env}
        log = self.log_path.open("w")  # noqa: SIM115 - closed in stop()
        say(f"Starting the portal: {self.workers} worker(s) on port {self.port} "
            f"(log: {self.log_path.relative_to(ROOT)})...")
        self._log = log
        self._proc = subprocess.Popen(
            [sys.executable, "main.py", "--workers", str(self.workers), "--port", str(self.port), "--no-demo"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SystemExit(f"The server stopped at start-up; see {self.log_path}.")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_ping", timeout=2) as r:
                    r.read()
                # with several workers, one answering is not all of them being up: ask a few times more
                for _ in range(self.workers * 4):
                    with urllib.request.urlopen(f"{self.base_url}/_ping", timeout=5) as r:
                        r.read()
                return self
            except OSError:
                time.sleep(0.3)  # polling a starting process, not synchronising threads
        self.stop()
        raise SystemExit(f"The server did not answer within {self.start_timeout:.0f} s; see {self.log_path}.")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL to its process group after 20 s)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:  # workers left behind by a killed manager
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the uvicorn workers (children of the main process; itself with one worker)."""
        if self._proc is None:
            return []
        if self.workers == 1:
            return [self._proc.pid]
        try:
            out = subprocess.run(["pgrep", "-P", str(self._proc.pid)], capture_output=True, text=True).stdout
        except OSError:
            return []
        return [int(p) for p in out.split()]

    def get(self, path: str, *, cookie: str | None = None, timeout: float = 60) -> tuple[int, bytes]:
        """One GET of ``path``; returns (status, body) (error statuses too, no exception)."""
        request = urllib.request.Request(self.base_url + path, headers={"Cookie": cookie} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def login(self, username: str, password: str | None = None) -> tuple[urllib.request.OpenerDirector, str]:
        """Log in to the staff admin as ``username`` (a demo account by default password).

        Returns:
            tuple[OpenerDirector, str]: a cookie-keeping client, and the ``Cookie`` header value
            (for wrk's ``-H`` or Locust).

        Raises:
            SystemExit: the login was refused (wrong password: the database was seeded by another
                program; use ``--reseed``).
        """
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{self.base_url}/admin/login", timeout=60) as form:  # the form's CSRF token
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.read().decode())
        body = urllib.parse.urlencode({"username": username, "password": password or self.db.password,
                                       "csrf_token": html.unescape(token.group(1)) if token else ""}).encode()
        try:
            with opener.open(f"{self.base_url}/admin/login", data=body, timeout=60) as answer:
                logged_in = not answer.geturl().endswith("/admin/login")  # a login redirects to the dashboard
        except urllib.error.HTTPError:
            logged_in = False  # a refused login answers 400 or 429
        if not logged_in:
            raise SystemExit(f"Could not log in as {username}: was {self.db.name} seeded by another program? "
                             "Use --reseed.")
        return opener, "; ".join(f"{c.name}={c.value}" for c in jar)

    def __enter__(self) -> "PortalServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
