"""Scenario 1, browsing: the home page and the department pages under 50 connections.

Half the requests are ``/`` (departments with their free sessions), the other half
``/departments/{code}`` of every active department in turn (doctors and a 14-day timetable).
wrk measures them right after the ceiling (``/_ping`` of the same server, same load).

Targets (issue #7): at least 1,500 requests/s, p99 under 100 ms, and at least 6 % of the
ceiling's rate in the same run, with no errors.
"""

from __future__ import annotations

from bench.harness import (
    BenchContext,
    Check,
    ScenarioResult,
    ServerProfile,
    Throughput,
    markdown_table,
    measure_ceiling,
    run_wrk,
    say,
)

NUMBER = 1
NAME = "browsing"
TITLE = "Browsing: `/` and `/departments/{code}`"

TARGET_RPS = 1500
TARGET_P99_MS = 100
TARGET_RATIO = 0.06


def department_codes(url: str) -> list[str]:
    """Codes of the active departments of the database at ``url``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT code FROM department WHERE is_active ORDER BY code")).scalars())
    finally:
        engine.dispose()


def browsing_paths(codes: list[str]) -> list[str]:
    """``/`` before every department page: half home page, half department pages."""
    return [p for code in codes for p in ("/", f"/departments/{code}")]


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the ceiling, then the browsing mix, on one server with ``ctx.workers`` workers."""
    paths = browsing_paths(department_codes(ctx.db.url))
    with ctx.server(name="browsing") as server:
        for path in sorted(set(paths)):
            status, _ = server.get(path)
            if status != 200:
                raise SystemExit(f"{path} answered {status} before the load; see {server.log_path}")
        say(f"  {len(set(paths))} pages answer 200; measuring...")
        load = {"connections": ctx.connections, "threads": ctx.threads}
        run_wrk(server.base_url, paths, seconds=2 if ctx.quick else 5, label="browsing (warm-up, not measured)",
                **load)
        ceiling = measure_ceiling(server.base_url, seconds=ctx.seconds, **load)
        if ctx.profile:
            with ServerProfile(server, "browsing") as profile:
                result = run_wrk(server.base_url, paths, seconds=ctx.seconds, label="browsing", **load)
        else:
            result = run_wrk(server.base_url, paths, seconds=ctx.seconds, label="browsing", **load)
        t = Throughput("browsing", result, ceiling)
    r, c = t.result, t.ceiling
    rows = [
        ("ceiling `/_ping`", f"{c.rps:,.0f}", f"{c.p50:,.1f}", f"{c.p90:,.1f}", f"{c.p99:,.1f}", f"{c.errors:,}",
         "100 %"),
        ("browsing", f"{r.rps:,.0f}", f"{r.p50:,.1f}", f"{r.p90:,.1f}", f"{r.p99:,.1f}", f"{r.errors:,}",
         f"{t.ratio:.1%}"),
    ]
    body = markdown_table(["what", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "of ceiling"], rows)
    if ctx.profile:
        body += "\n\nProfile of the server during the measured run (not the ceiling), " + profile.summary_markdown()
    return ScenarioResult(
        body=body,
        facts=[f"{ctx.workers} uvicorn worker(s); {ctx.connections} connections; `/` and "
               f"`/departments/{{code}}` of {len(paths) // 2} departments alternately; "
               f"{ctx.seconds:g} s each for the ceiling and the pages, right after each other"],
        checks=[
            Check(f"≥ {TARGET_RPS:,} req/s", f"{r.rps:,.0f} req/s", r.rps >= TARGET_RPS),
            Check(f"p99 < {TARGET_P99_MS} ms", f"{r.p99:,.1f} ms", r.p99 < TARGET_P99_MS),
            Check(f"≥ {TARGET_RATIO:.0%} of the ceiling", f"{t.ratio:.1%} of {c.rps:,.0f} req/s",
                  t.ratio >= TARGET_RATIO),
            Check("no errors", f"{r.errors:,} errors", r.errors == 0),
        ],
    )
