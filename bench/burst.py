"""Running a burst of Locust users (``bench/locust_burst.py``) and reading what each got.

:func:`run_burst` starts the locustfile through the harness (:func:`bench.harness.run_locust`)
with one user class, waits for the users' records, and returns them with the figures the
race scenarios report: the rate of the timed actions (actions / seconds from the release to
the last answer) and their latency percentiles.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import LocustResult, run_locust

#: Seconds Locust may run at most (it stops by itself when the last user is done).
MAX_SECONDS = 600


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile by nearest rank (``nan`` for no values).

    Args:
        values (list[float]): the sample.
        pct (float): 0-100.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct * len(ordered) / 100) - 1)]


@dataclass
class Burst:
    """What the users of one burst did.

    Attributes:
        users (int): simulated users.
        spread_s (float): seconds over which the timed actions were spread (0 = all at once).
        records (list[dict[str, Any]]): one per user (see ``bench/locust_burst.py``).
        locust (LocustResult): Locust's own statistics of the run.
    """

    users: int
    spread_s: float
    records: list[dict[str, Any]]
    locust: LocustResult
    outcomes: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.outcomes = Counter(r.get("outcome", "missing") for r in self.records)

    @property
    def acted(self) -> list[dict[str, Any]]:
        """Records of users whose timed action ran (their preparation succeeded)."""
        return [r for r in self.records if "start_s" in r]

    @property
    def latencies_ms(self) -> list[float]:
        """Each timed action's latency (ms)."""
        return [(r["end_s"] - r["start_s"]) * 1000 for r in self.acted]

    @property
    def seconds(self) -> float:
        """From the release of the barrier to the last timed action's answer (s)."""
        return max((r["end_s"] for r in self.acted), default=0.0)

    @property
    def rate(self) -> float:
        """Timed actions per second over :attr:`seconds`."""
        return len(self.acted) / self.seconds if self.seconds else 0.0

    def p(self, pct: float) -> float:
        """Latency percentile of the timed actions (ms)."""
        return percentile(self.latencies_ms, pct)

    def by_outcome(self) -> dict[str, tuple[int, float, float]]:
        """Per outcome of the timed actions: (count, p50 ms, p95 ms), most frequent first."""
        groups: dict[str, list[float]] = {}
        for r in self.acted:
            groups.setdefault(r.get("outcome", "missing"), []).append((r["end_s"] - r["start_s"]) * 1000)
        return {k: (len(v), percentile(v, 50), percentile(v, 95))
                for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))}

    def outcome_latencies(self) -> str:
        """``booked 100: p50 85 ms, p95 240 ms; ...`` (the timed actions by outcome)."""
        return "; ".join(f"{k} {n:,}: p50 {p50:,.0f} ms, p95 {p95:,.0f} ms"
                         for k, (n, p50, p95) in self.by_outcome().items())

    def count(self, predicate) -> int:
        """Records for which ``predicate(record)`` is true."""
        return sum(1 for r in self.records if predicate(r))

    @property
    def server_errors(self) -> int:
        """Timed actions answered with a 5xx status."""
        return self.count(lambda r: 500 <= int(r.get("status") or 0) <= 599)

    @property
    def connection_errors(self) -> int:
        """Users whose request got no HTTP answer at any step."""
        return self.count(lambda r: "ConnectionFailed" in str(r.get("outcome", "")))


def run_burst(locustfile: Path, user_class: str, base_url: str, *, users: int, spread_s: float = 0.0,
              env: dict[str, str] | None = None) -> Burst:
    """Run ``users`` users of ``user_class`` once each, all released together.

    Args:
        locustfile (Path): the scenario's locustfile.
        user_class (str): the class to run (``PingBurst`` for the ceiling).
        base_url (str): the server.
        users (int): simulated users (all spawned within about a second).
        spread_s (float): spread the timed actions evenly over this many seconds (0 = at once).
        env (dict[str, str] | None): the locustfile's own settings.

    Returns:
        Burst: every user's record and Locust's statistics.

    Raises:
        RuntimeError: Locust ended without writing the records (its output is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.json"
        result = run_locust(
            locustfile, base_url, users=users, spawn_rate=max(users, 1), seconds=MAX_SECONDS,
            env={**(env or {}), "RACE_USERS": str(users), "RACE_SPREAD": str(spread_s), "RACE_RESULTS": str(path)},
            extra_args=[user_class])
        if not path.exists():
            raise RuntimeError(f"Locust ({user_class}) wrote no records:\n{result.output[-3000:]}")
        data = json.loads(path.read_text(encoding="utf-8"))
    return Burst(users=users, spread_s=spread_s, records=data["records"], locust=result)
