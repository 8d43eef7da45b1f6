"""A real portal server in a subprocess (``python main.py --workers N``), for the fault tests.

:class:`LiveServer` starts ``main.py`` on a free port with its own ``DATABASE_URL``, finds
its uvicorn worker processes (children of the server process started by
``multiprocessing`` spawn), kills them, waits until uvicorn's supervisor has replaced
them, and stops the server. Waiting is polling for a condition with a deadline (the
server answering, the worker count), never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
#: Environment variables of the test process the server must not inherit.
_DROP = ("DATABASE_URL", "TEST_DATABASE_URL", "PYTEST_CURRENT_TEST")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``python main.py --workers N --port P --no-demo`` on ``database_url``.

    Args:
        database_url (str): the database the server uses (already migrated and filled).
        log_path (Path): file that receives the server's stdout and stderr.
        workers (int): uvicorn worker processes.
        env (dict[str, str] | None): extra environment variables for the server.
    """

    def __init__(self, database_url: str, log_path: Path, *, workers: int = 2,
                 env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 120.0) -> None:
        """Start the server; return once ``workers`` workers run and ``/`` answers 200.

        Raises:
            RuntimeError: the server exited or was not ready within ``timeout`` seconds
                (the message holds the end of its log).
        """
        env = {k: v for k, v in os.environ.items() if k not in _DROP}
        env.update(self.extra_env)
        env["DATABASE_URL"] = self.database_url
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--workers", str(self.workers), "--port", str(self.port),
             "--no-demo"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_ready(timeout=timeout)

    def worker_pids(self) -> set[int]:
        """Process ids of the live uvicorn workers: the spawned children of the server, or
        the server process itself when it runs one worker (uvicorn then serves in it)."""
        assert self.proc is not None
        if self.workers == 1:
            return {self.proc.pid} if self.proc.poll() is None else set()
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return set()
        pids = set()
        for child in children:
            try:
                if "--multiprocessing-fork" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                    pids.add(child.pid)
            except psutil.NoSuchProcess:
                continue
        return pids

    def wait_ready(self, *, timeout: float = 120.0, not_pids: set[int] = frozenset()) -> set[int]:
        """Poll until ``workers`` workers (none of ``not_pids``) run and ``/`` answers 200.

        Returns:
            set[int]: the worker pids.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            pids = self.worker_pids()
            if len(pids) == self.workers and not (pids & not_pids):
                try:
                    if httpx.get(f"{self.base_url}/", timeout=10).status_code == 200:
                        return pids
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling interval, not synchronisation

    def kill_workers(self, pids: set[int]) -> None:
        """SIGKILL the given worker processes (as the OOM killer or a crash would)."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop the server (SIGTERM; SIGKILL to it and its workers after 30 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            workers = self.worker_pids()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_workers(workers)
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        if self._log:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"
