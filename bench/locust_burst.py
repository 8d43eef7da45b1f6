"""Locust users that do one thing each, all at once: prepare, wait for every user, act.

The race scenarios (``bench/scenarios/booking_rush_locust.py``,
``bench/scenarios/dispensing_race_locust.py``) subclass :class:`BurstUser`. Each simulated
user runs its flow ONCE:

1. :meth:`BurstUser.prepare` (e.g. open the booking form, log in), not timed; its
   connection is then closed, so the timed action starts on a new one (the person took a
   while: longer than the server keeps an idle connection);
2. waits until all ``RACE_USERS`` users have prepared (a gevent barrier in the Locust process);
3. optionally waits its own offset (``RACE_SPREAD`` seconds spread evenly over the users, in
   a shuffled order; 0 = every user acts at the same moment);
4. :meth:`BurstUser.act`, timed (the request the race is about);
5. waits until every user has acted, then :meth:`BurstUser.after` (e.g. read the result
   page), not timed, so reading results never competes with the race.

When the last user is done, the process writes every user's record to the JSON file
``RACE_RESULTS`` and stops Locust. :class:`PingBurst` does the same with ``GET /_ping`` as its
act: the ceiling of a burst of that many users, measured the same way.

Records: ``{"index", "outcome", "status", "start_s", "end_s", ...}`` with times in seconds
from the release of the barrier; ``outcome`` is the scenario's label (``error: ...`` for an
exception, connection errors included).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, task

USERS = int(os.environ.get("RACE_USERS", "1"))
SPREAD_SECONDS = float(os.environ.get("RACE_SPREAD", "0"))
RESULTS_PATH = os.environ.get("RACE_RESULTS", "")


class ConnectionFailed(Exception):
    """The request got no HTTP answer (refused, reset, timed out)."""


class Client:
    """Locust's HTTP session as ``bench.race_flows`` wants it: no redirects followed, a
    connection error raised, requests grouped in Locust's statistics under ``names``."""

    def __init__(self, db: Any, names: dict[tuple[str, str], str], headers: dict[str, str] | None = None):
        self.session = db
        self.names = names
        self.headers = headers or {}

    def _name(self, method: str, path: str) -> str:
        for (m, prefix), name in self.names.items():
            if m == method and path.startswith(prefix):
                return name
        return path.split("?", 1)[0]

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.headers:
            kwargs["headers"] = {**self.headers, **(kwargs.get("headers") or {})}
        # Locust counts an answer as failed by its status alone; here a 4xx page is a regular
        # outcome (a full session's 409, a 403) that the scenario judges: only 5xx and no answer fail.
        with self.session.request(method, path, name=self._name(method, path), allow_redirects=False,
                                  catch_response=True, **kwargs) as response:
            if response.status_code == 0:
                response.failure("no answer")
                raise ConnectionFailed(str(getattr(response, "error", None) or "no answer"))
            if response.status_code >= 500:
                response.failure(f"status {response.status_code}")
            else:
                response.success()
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``path`` (relative to the host)."""
        return self._send("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """POST ``path`` (``data=`` a form)."""
        return self._send("POST", path, **kwargs)


class _Shared:
    """State shared by the users of this Locust process (gevent: no locks needed)."""

    def __init__(self) -> None:
        self.next_index = 0
        self.prepared = 0
        self.acted = 0
        self.finished = 0
        self.released = Event()
        self.all_acted = Event()
        self.release_time = 0.0
        order = list(range(USERS))
        random.shuffle(order)
        self.offsets = {i: SPREAD_SECONDS * k / max(USERS, 1) for k, i in enumerate(order)}
        self.records: list[dict[str, Any]] = []


_shared = _Shared()


def _label_error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {str(exc)[:100]}"


class BurstUser(FastHttpUser):
    """One simulated person doing one timed action together with all the others (see the module)."""

    abstract = True
    #: (method, path prefix) -> name in Locust's statistics.
    request_names: dict[tuple[str, str], str] = {}

    def request_headers(self, index: int) -> dict[str, str]:
        """Headers of every request of user ``index`` (e.g. its ``X-Forwarded-For``)."""
        return {}

    def prepare(self, index: int, client: Client) -> Any:
        """Everything before the race (not timed); returns what :meth:`act` needs."""
        return None

    def act(self, index: int, client: Client, state: Any) -> dict[str, Any]:
        """The timed action; returns the record's ``outcome`` and ``status`` (and more fields)."""
        raise NotImplementedError

    def after(self, index: int, client: Client, state: Any, record: dict[str, Any]) -> None:
        """After every user acted (not timed): may complete ``record`` (e.g. ``outcome``)."""

    @task
    def burst(self) -> None:
        """The one run of this user (then it idles until the last user stops Locust)."""
        shared = _shared
        index = shared.next_index
        shared.next_index += 1
        if index >= USERS:  # Locust started more users than RACE_USERS: this one sits out
            gevent.sleep(3600)
            return
        client = Client(self.client, self.request_names, self.request_headers(index))
        record: dict[str, Any] = {"index": index}
        state = None
        try:
            state = self.prepare(index, client)
        except Exception as exc:  # noqa: BLE001 - the outcome of this user
            record.update(outcome="prepare " + _label_error(exc), status=0)
        # The act opens a connection of its own, as a browser does after a person took longer
        # than the server keeps an idle connection (uvicorn: 5 s) to fill the form in; a reused
        # one could be closed under it by then.
        self.client.client.close()
        shared.prepared += 1
        if shared.prepared == USERS:
            shared.release_time = time.perf_counter()
            shared.released.set()
        shared.released.wait()
        if "outcome" not in record:
            offset = shared.offsets[index]
            if offset:
                gevent.sleep(max(0.0, shared.release_time + offset - time.perf_counter()))
            start = time.perf_counter()
            try:
                record.update(self.act(index, client, state))
            except Exception as exc:  # noqa: BLE001 - the outcome of this user
                record.update(outcome=_label_error(exc), status=0)
            end = time.perf_counter()
            record.update(start_s=start - shared.release_time, end_s=end - shared.release_time)
        shared.acted += 1
        if shared.acted == USERS:
            shared.all_acted.set()
        shared.all_acted.wait()
        try:
            self.after(index, client, state, record)
        except Exception as exc:  # noqa: BLE001 - the outcome of this user
            record.update(outcome="after " + _label_error(exc))
        shared.records.append(record)
        shared.finished += 1
        if shared.finished == USERS:
            if RESULTS_PATH:
                with open(RESULTS_PATH, "w", encoding="utf-8") as fh:
                    json.dump({"users": USERS, "spread_s": SPREAD_SECONDS,
                               "records": sorted(shared.records, key=lambda r: r["index"])}, fh)
            # quit() stops every user, this one included: call it from a greenlet of its own
            gevent.spawn(self.environment.runner.quit)
        else:
            gevent.sleep(3600)  # stopped by the last user's quit()


class PingBurst(BurstUser):
    """The ceiling: every user opens its connection (``GET /_ping``), then all ``GET /_ping`` at once."""

    request_names = {("GET", "/_ping"): "GET /_ping"}

    def prepare(self, index: int, client: Client) -> Any:
        """One ping first, so the timed one finds its connection open (as the scenarios' do)."""
        client.get("/_ping")

    def act(self, index: int, client: Client, state: Any) -> dict[str, Any]:
        """One ``GET /_ping``."""
        response = client.get("/_ping")
        return {"outcome": "ok" if response.status_code == 200 else f"other {response.status_code}",
                "status": response.status_code}
