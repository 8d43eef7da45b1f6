"""Scenario 5, reports: the dashboards and every report page, one request at a time.

On one server (one uvicorn worker), logged in as each demo role, every page is requested
once (to warm caches), then per page ``--report-warmup`` times unmeasured and
``--report-requests`` times measured, one after the other. Target (issue #7): each page
within one second (at the 95th percentile) on the scale-100 hospital.

Also runnable alone: ``python bench/reports.py`` (= ``python bench/run.py --only reports``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import urllib.request
from datetime import date, timedelta

from bench.harness import BenchContext, Check, ScenarioResult, ServerProfile, markdown_table, say
from portal.core import clock

NUMBER = 5
NAME = "reports"
TITLE = "Dashboards and reports"

BUDGET_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This scenario's options on ``bench/run.py``'s command line."""
    parser.add_argument("--report-requests", type=int, default=None,
                        help="measured requests per report page (20; 3 with --quick)")
    parser.add_argument("--report-warmup", type=int, default=2, help="unmeasured requests per report page first (2)")


def pages(today: date) -> list[tuple[str, str, str]]:
    """(label, user, path) of every page measured."""
    year_ago = (today.replace(day=1) - timedelta(days=335)).replace(day=1)
    last_year = f"date_from={year_ago}&date_to={today}"
    return [
        ("dashboard (admin)", "admin", "/admin/"),
        ("dashboard (doctor)", "doctor", "/admin/"),
        ("dashboard (nurse)", "nurse", "/admin/"),
        ("dashboard (pharmacist)", "pharmacist", "/admin/"),
        ("outpatient volume, last 30 days", "admin", "/admin/reports/outpatient-volume"),
        ("outpatient volume, 12 months by month", "admin", f"/admin/reports/outpatient-volume?{last_year}&grain=month"),
        ("outpatient volume, 30 days, one department", "admin", "/admin/reports/outpatient-volume?department=2"),
        ("doctor workload, last 30 days", "admin", "/admin/reports/doctor-workload"),
        ("doctor workload, 12 months", "admin", f"/admin/reports/doctor-workload?{last_year}"),
        ("doctor workload CSV (every doctor)", "admin", "/admin/reports/doctor-workload?export=per-doctor"),
        ("pharmacy, last 30 days", "admin", "/admin/reports/pharmacy"),
        ("pharmacy, 12 months", "admin", f"/admin/reports/pharmacy?{last_year}"),
        ("pharmacy, 30 days, one department", "admin", "/admin/reports/pharmacy?department=2"),
    ]


def p95(values: list[float]) -> float:
    """95th percentile by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def measure(opener: urllib.request.OpenerDirector, url: str, warmup: int, n: int) -> list[float]:
    """Seconds of ``n`` sequential GETs of ``url`` (after ``warmup`` unmeasured ones).

    Raises:
        SystemExit: a page did not answer 200.
    """
    times = []
    for i in range(warmup + n):
        started = time.perf_counter()
        with opener.open(url, timeout=120) as response:
            response.read()
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}")
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def run(ctx: BenchContext) -> ScenarioResult:
    """Time every page on a one-worker server; the target is p95 within 1 s per page."""
    n = ctx.args.report_requests or (3 if ctx.quick else 20)
    warmup = ctx.args.report_warmup
    today = clock.today()
    plan = pages(today)
    results: list[tuple[str, list[float]]] = []
    with ctx.server(workers=1, name="reports") as server:
        openers = {}
        say(f"  warming up: every page once ({len(plan)} pages)...")
        for _label, user, path in plan:
            if user not in openers:
                openers[user] = server.login(user)[0]
            measure(openers[user], server.base_url + path, 0, 1)
        profile = ServerProfile(server, "reports") if ctx.profile else contextlib.nullcontext()
        with profile:
            for i, (label, user, path) in enumerate(plan, start=1):
                times = measure(openers[user], server.base_url + path, warmup, n)
                results.append((label, times))
                say(f"  [{i}/{len(plan)}] {label}: median {statistics.median(times) * 1000:,.0f} ms, "
                    f"p95 {p95(times) * 1000:,.0f} ms")
    rows = [(label, f"{statistics.median(t) * 1000:,.0f}", f"{p95(t) * 1000:,.0f}", f"{max(t) * 1000:,.0f}",
             "yes" if p95(t) <= BUDGET_SECONDS else "**no**") for label, t in results]
    worst_label, worst = max(results, key=lambda r: p95(r[1]))
    slow = [label for label, t in results if p95(t) > BUDGET_SECONDS]
    body = markdown_table(["page", "median ms", "p95 ms", "max ms", "within 1 s"], rows, align="lrrrc")
    if ctx.profile:
        body += "\n\nProfile of the server over all measured requests, " + profile.summary_markdown()
    return ScenarioResult(
        body=body,
        facts=[f"one uvicorn worker; {n} sequential requests per page after {warmup} warm-up "
               "(and one warm-up pass over every page)"],
        checks=[Check(f"each of {len(results)} pages within 1 s (p95)",
                      f"{len(results) - len(slow)} within; slowest {worst_label}, p95 {p95(worst) * 1000:,.0f} ms",
                      not slow)],
    )
