"""Scenario 3, busy admin: the appointment list at a million appointments, ours next to plain sqladmin.

The database is a demo hospital of its own at ``--admin-scale`` (334: 1,002,000
appointments; ``main.py seed --scale 334``, prepared and reused like the run's own, see
:func:`bench.harness.ensure_database`). One server (``main.py --workers N``) serves both
lists: the portal's at ``/admin/appointment/list`` and, with ``PORTAL_BENCH_PLAIN_ADMIN=1``,
a plain sqladmin ``ModelView`` of the same table with the same columns, search and
filters and sqladmin's defaults otherwise at ``/plain-admin/appointment/list``
(``views.plain_admin``). Four requests each, as the issue names them:

* the first page;
* a page filtered by status and department (``confirmed`` in Cardiology);
* a search by reference (an appointment from the middle of the table);
* page 1,000.

Before measuring, every request is fetched once from both lists, and the references
they show are compared: the same rows in the same order, or the scenario fails. Then
wrk measures ``/_ping`` (the ceiling) and each of the eight requests alone, one after
the other, with the same connections and threads (one connection by default: one
admin, page after page), our four first, then the plain four, each once the server and
the database are idle again; a Lua ``done`` hook prints the 50th, 90th, 95th and 99th
percentiles. A plain run lasts at least 30 s, since its pages take seconds each.

Target (issue #7): p95 under 300 ms for each of the four requests of the portal's list,
with no errors, on at least 1,000,000 appointments. The plain list is measured, not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
import urllib.parse
from dataclasses import dataclass

from bench.harness import (
    CEILING_PATH,
    BenchContext,
    Check,
    PortalServer,
    ScenarioResult,
    ServerProfile,
    WrkResult,
    ensure_database,
    load_average,
    markdown_table,
    run_wrk,
    say,
)

NUMBER = 3
NAME = "admin_list"
TITLE = "Busy admin: appointment list at 1,000,000 appointments, ours and plain sqladmin"

FULL_SCALE, QUICK_SCALE = 334, 34
#: Shortest run of a plain-sqladmin request (s): its pages take seconds, so a short run sees too few.
PLAIN_MIN_SECONDS = 30
#: Longest wait for the server and the database to be idle between runs (s).
IDLE_LIMIT_SECONDS = 180
TARGET_P95_MS = 300
TARGET_ROWS = 1_000_000
OURS, PLAIN = "/admin", "/plain-admin"

_REFERENCE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}\b")
_PERCENTILE = re.compile(r"^PERCENTILE (\d+) (\d+)$", re.M)

#: A wrk script that prints the latency percentiles wrk does not (95th) after the run.
PERCENTILES_LUA = """
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 95, 99}) do
    io.write(string.format("PERCENTILE %d %d\\n", p, latency:percentile(p)))
  end
end
"""


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """This scenario's options."""
    group.add_argument("--admin-scale", type=int, default=None,
                       help=f"seed scale of the admin-list database ({FULL_SCALE}: 1,002,000 appointments; "
                            f"{QUICK_SCALE} with --quick)")
    group.add_argument("--admin-connections", type=int, default=1,
                       help="concurrent connections of the admin-list runs (1: one admin, page after page)")


@dataclass
class Request:
    """One of the issue's four requests."""

    name: str
    query: str

    def path(self, prefix: str) -> str:
        """The path on the list at ``prefix`` (``/admin`` or ``/plain-admin``)."""
        return f"{prefix}/appointment/list" + (f"?{self.query}" if self.query else "")


def pick_requests(url: str) -> list[Request]:
    """The four requests, with a reference and a department taken from the database at ``url``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            top = conn.execute(text("SELECT MAX(id) FROM appointment")).scalar_one()
            reference = conn.execute(text("SELECT reference FROM appointment WHERE id >= :id ORDER BY id LIMIT 1"),
                                     {"id": top // 2}).scalar_one()
            department = conn.execute(text("SELECT id FROM department WHERE code = 'CARD'")).scalar_one()
    finally:
        engine.dispose()
    return [
        Request("first page", ""),
        Request("status + department", urllib.parse.urlencode({"status": "confirmed", "department_id": department})),
        Request("search by reference", urllib.parse.urlencode({"search": reference})),
        Request("page 1,000", "page=1000"),
    ]


def shown_references(html: bytes) -> list[str]:
    """The booking references a list page shows, in order (each once)."""
    seen: list[str] = []
    for ref in _REFERENCE.findall(html.decode("utf-8", "replace")):
        if ref not in seen:
            seen.append(ref)
    return seen


def percentiles(result: WrkResult) -> dict[int, float]:
    """The percentiles printed by :data:`PERCENTILES_LUA`, in milliseconds."""
    return {int(p): int(us) / 1000 for p, us in _PERCENTILE.findall(result.raw)}


def compare_lists(server: PortalServer, cookie: str, requests: list[Request]) -> list[tuple]:
    """Fetch every request from both lists once; fail unless they show the same rows in the same order.

    Returns:
        list[tuple]: (request, rows, ours ms, plain ms, ours KB, plain KB) per request.
    """
    rows = []
    for r in requests:
        t0 = time.perf_counter()
        status_ours, ours = server.get(r.path(OURS), cookie=cookie, timeout=120)
        t1 = time.perf_counter()
        status_plain, plain = server.get(r.path(PLAIN), cookie=cookie, timeout=120)
        t2 = time.perf_counter()
        if status_ours != 200 or status_plain != 200:
            raise SystemExit(f"{r.name}: ours answered {status_ours}, plain {status_plain}; see {server.log_path}")
        a, b = shown_references(ours), shown_references(plain)
        if a != b or not a:
            raise SystemExit(f"{r.name}: the lists differ: ours {a[:5]}... ({len(a)}), plain {b[:5]}... ({len(b)})")
        say(f"  {r.name}: {len(a)} rows, the same in both lists (single fetch: ours {(t1 - t0) * 1000:,.0f} ms, "
            f"plain {(t2 - t1) * 1000:,.0f} ms)")
        rows.append((r, len(a), (t1 - t0) * 1000, (t2 - t1) * 1000, len(ours) / 1024, len(plain) / 1024))
    return rows


def _cpu_ticks(pids: list[int]) -> int:
    """User and system clock ticks used so far by ``pids`` (from ``/proc``; 0 where unreadable)."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_until_idle(server: PortalServer, url: str) -> None:
    """Wait until the server's processes use under 5 % of a CPU and the database runs no query of
    the benchmark's (at most :data:`IDLE_LIMIT_SECONDS`), so a run does not measure the last one's tail."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(url)
    pids = [p for p in [server.pid, *server.worker_pids()] if p]
    hz = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            while time.monotonic() - started < IDLE_LIMIT_SECONDS:
                before = _cpu_ticks(pids)
                time.sleep(1)  # sampling another process's CPU use, not synchronising threads
                busy = (_cpu_ticks(pids) - before) / hz
                queries = conn.execute(text(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE db = :db AND command = 'Query' "
                    "AND id <> CONNECTION_ID()"), {"db": name}).scalar_one()
                if busy < 0.05 and not queries:
                    return
            say(f"  (the server or database was still busy after {IDLE_LIMIT_SECONDS} s; measuring anyway)")
    finally:
        engine.dispose()


def times(factor: float) -> str:
    """A ratio as "2.5 x" (one decimal below 10, none above)."""
    return f"{factor:.1f} x" if factor < 10 else f"{factor:,.0f} x"


def footer_count(html: bytes) -> str:
    """The "of N items" of a list page's footer."""
    m = re.search(r"Showing\s+[\d,]+\s+to\s+[\d,]+\s+of\s+(.+?)\s+items", html.decode("utf-8", "replace"))
    return m.group(1) if m else "?"


def run(ctx: BenchContext) -> ScenarioResult:
    """Prepare the million-appointment database, then measure both lists on one server."""
    scale = ctx.args.admin_scale or (QUICK_SCALE if ctx.quick else FULL_SCALE)
    connections = ctx.args.admin_connections
    threads = max(1, min(ctx.threads, connections))
    # --quick: a small database whose plain pages are quick too; the same short runs for both
    plain_seconds = ctx.seconds if ctx.quick else max(ctx.seconds, PLAIN_MIN_SECONDS)
    started = time.monotonic()
    db = ensure_database(scale)
    prepared = time.monotonic() - started
    appointments = db.counts.get("appointment", 0)
    requests = pick_requests(db.url)
    say(f"  {appointments:,} appointments in {db.name}; requests: "
        + "; ".join(f"{r.name} ({r.query or '-'})" for r in requests))

    figures: dict[tuple[str, str], WrkResult] = {}
    loads: dict[tuple[str, str], float | None] = {}
    with PortalServer(db, workers=ctx.workers, env={"PORTAL_BENCH_PLAIN_ADMIN": "1"}, name="admin-list") as server:
        _, cookie = server.login("admin")
        compared = compare_lists(server, cookie, requests)
        _, first = server.get(requests[0].path(OURS), cookie=cookie)
        _, first_plain = server.get(requests[0].path(PLAIN), cookie=cookie, timeout=120)
        counts = (footer_count(first), footer_count(first_plain))
        wait_until_idle(server, db.url)
        ceiling_load = load_average()
        ceiling = run_wrk(server.base_url, [CEILING_PATH], connections=connections, threads=threads,
                          seconds=ctx.seconds, script=PERCENTILES_LUA, label=f"ceiling {CEILING_PATH}")
        # Ours first, then plain: a plain request still running when its wrk run ends (wrk does
        # not wait for it) would otherwise load the server during the next run.
        def measure(label: str, prefix: str, seconds: float) -> None:
            for r in requests:
                wait_until_idle(server, db.url)
                loads[(r.name, label)] = load_average()
                figures[(r.name, label)] = run_wrk(
                    server.base_url, [r.path(prefix)], connections=connections, threads=threads, seconds=seconds,
                    headers={"Cookie": cookie}, timeout_seconds=120, script=PERCENTILES_LUA, label=f"{label}: {r.name}")

        profile = ServerProfile(server, "admin-list") if ctx.profile else contextlib.nullcontext()
        with profile:  # py-spy samples busy stacks only: the idle waits between runs add nothing
            measure("ours", OURS, ctx.seconds)
        measure("plain sqladmin", PLAIN, plain_seconds)

    table = []
    for r in requests:
        ours, plain = figures[(r.name, "ours")], figures[(r.name, "plain sqladmin")]
        for label, res in (("ours", ours), ("plain sqladmin", plain)):
            p = percentiles(res) if res.requests else {}
            cell = lambda q: f"{p[q]:,.0f}" if q in p else "none finished"  # noqa: E731
            load = loads.get((r.name, label))
            table.append((r.name, label, f"{res.rps:,.1f}", cell(50), cell(95), cell(99), f"{res.requests:,}",
                          f"{res.errors:,}", f"{res.rps / ceiling.rps:.2%}", "?" if load is None else f"{load:.1f}"))
    c = percentiles(ceiling)
    versus = []
    for r in requests:
        ours, plain = figures[(r.name, "ours")], figures[(r.name, "plain sqladmin")]
        po, pp = percentiles(ours), percentiles(plain) if plain.requests else {}
        ratio = lambda q: times(pp[q] / po[q]) if q in pp and po.get(q) else "-"  # noqa: E731
        versus.append((r.name, ratio(50), ratio(95), times(ours.rps / plain.rps) if plain.rps else "-"))
    body = "\n\n".join([
        markdown_table(["request", "list", "req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors",
                        "of ceiling", "load avg"],
                       [("ceiling `/_ping`", "", f"{ceiling.rps:,.0f}", f"{c[50]:,.1f}", f"{c[95]:,.1f}", f"{c[99]:,.1f}",
                         f"{ceiling.requests:,}", f"{ceiling.errors:,}", "100 %", "?" if ceiling_load is None
                         else f"{ceiling_load:.1f}"), *table]),
        "Ours against plain sqladmin (plain's figure divided by ours; req/s ours divided by plain's):\n\n"
        + markdown_table(["request", "p50", "p95", "req/s"], versus),
        "Same rows in both lists (fetched once each before the load; page size 25):\n\n" + markdown_table(
            ["request", "rows", "ours ms", "plain ms", "ours KB", "plain KB"],
            [(r.name, n, f"{a:,.0f}", f"{b:,.0f}", f"{ka:,.0f}", f"{kb:,.0f}") for r, n, a, b, ka, kb in compared]),
        f"First page footer: ours \"of {counts[0]} items\", plain \"of {counts[1]} items\".",
    ])
    if ctx.profile:
        body += "\n\nProfile of the server over our four runs, " + profile.summary_markdown()
    checks = [Check(f"≥ {TARGET_ROWS:,} appointments", f"{appointments:,}", appointments >= TARGET_ROWS)]
    for r in requests:
        res = figures[(r.name, "ours")]
        p95 = percentiles(res).get(95, float("inf")) if res.requests else float("inf")
        plain = figures[(r.name, "plain sqladmin")]
        plain95 = percentiles(plain).get(95, float("nan")) if plain.requests else float("nan")
        checks.append(Check(f"{r.name}: p95 < {TARGET_P95_MS} ms, no errors",
                            f"{p95:,.0f} ms, {res.errors:,} errors (plain sqladmin {plain95:,.0f} ms)",
                            p95 < TARGET_P95_MS and res.errors == 0))
    return ScenarioResult(
        body=body,
        facts=[f"database `{db.name}`: `main.py seed --scale {scale}` ({db.counts_line()}); "
               f"{'seeded' if db.seeded_now else 'reused'}, prepared in {prepared:,.0f} s",
               f"one server, {ctx.workers} uvicorn worker(s), both lists; wrk {connections} connection(s), "
               f"{threads} thread(s); {ctx.seconds:g} s per request on our list, {plain_seconds:g} s on the plain "
               "one; one request at a time, ours then plain, each run started once the server and the "
               "database were idle; the ceiling right before"],
        checks=checks,
    )
