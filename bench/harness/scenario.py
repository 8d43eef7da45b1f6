"""What a benchmark scenario gets (:class:`BenchContext`) and gives back (:class:`ScenarioResult`).

A scenario is a module in ``bench/scenarios/`` with::

    NUMBER = 1                      # the issue's scenario number (orders the run)
    NAME = "browsing"               # for ``--only browsing``
    TITLE = "Browsing"              # heading in docs/benchmarks.md

    def run(ctx: BenchContext) -> ScenarioResult: ...

    def add_arguments(parser) -> None: ...   # optional: the scenario's own options

``bench/run.py`` finds every such module, prepares the database once, runs the scenarios in
order and records one section with all their tables and a summary of their targets.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from bench.harness.database import BenchDatabase
from bench.harness.machine import MachineInfo
from bench.harness.server import PortalServer


@dataclass
class Check:
    """One target of the issue and whether this run met it.

    Attributes:
        target (str): the target as the issue states it ("≥ 1,500 req/s").
        measured (str): what was measured ("1,732 req/s").
        met (bool): the target was met.
    """

    target: str
    measured: str
    met: bool


@dataclass
class ScenarioResult:
    """A scenario's figures.

    Attributes:
        body (str): Markdown (tables, notes) recorded under the scenario's heading.
        checks (list[Check]): targets, for the run's summary table.
        facts (list[str]): short lines about how it ran (workers, connections, duration).
    """

    body: str = ""
    checks: list[Check] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        """Every target was met (True when there are none)."""
        return all(c.met for c in self.checks)


@dataclass
class BenchContext:
    """What every scenario gets.

    Attributes:
        db (BenchDatabase): the seeded database.
        machine (MachineInfo): facts of this run.
        quick (bool): quick mode: shorter runs (and a smaller scale).
        seconds (float): duration of each measured load run (s).
        connections (int): concurrent connections of the load runs.
        threads (int): wrk threads.
        workers (int): uvicorn workers of the servers started (``--workers``).
        args (argparse.Namespace): the whole command line.
        profile (bool): sample the servers with py-spy during the measured runs (``--profile``;
            see :class:`bench.harness.profile.ServerProfile`).
    """

    db: BenchDatabase
    machine: MachineInfo
    quick: bool
    seconds: float
    connections: int
    threads: int
    workers: int
    args: argparse.Namespace
    profile: bool = False

    def server(self, *, workers: int | None = None, env: dict[str, str] | None = None,
               name: str = "portal") -> PortalServer:
        """A portal server on the database, not started yet (use it with ``with``).

        Args:
            workers (int | None): uvicorn workers; :attr:`workers` when omitted.
            env (dict[str, str] | None): extra environment.
            name (str): log file name part (``bench/results/server-<name>.log``).
        """
        return PortalServer(self.db, workers=workers or self.workers, env=env, name=name)
