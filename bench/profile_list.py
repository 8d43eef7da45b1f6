"""Profile admin list pages in-process: the SQL each one runs (timed, with EXPLAIN) and a pyinstrument profile.

    DATABASE_URL=mysql+pymysql://root@127.0.0.1:3306/portal_bench_admin \\
    PORTAL_DEMO_PASSWORD=bench-portal-pass-1 \\
        python bench/profile_list.py "/admin/appointment/list" "/admin/appointment/list?page=1000"

For every path (after one unmeasured request that fills the caches) it prints the
statements the request ran with their time in milliseconds and, on MariaDB, their
``EXPLAIN``; then the CPU time of this process per request over ``--repeat`` requests
(less disturbed by other work on a shared machine than wall time), and ``--repeat``
more requests under pyinstrument with the profile as text.
The application runs in this process (httpx over ASGI, logged in as ``--user``), with the
work sqladmin hands to the threadpool run inline, so the profile sees the whole request in
one thread: routing, authentication, queries, ORM and template.
This is a diagnostic, not a benchmark: speed figures come from ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    """Profile the given admin paths; return the exit status."""
    p = argparse.ArgumentParser(prog="bench/profile_list.py", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="admin paths, e.g. /admin/appointment/list?page=1000")
    p.add_argument("--user", default="admin", help="staff account to log in as (admin)")
    p.add_argument("--password", default=os.environ.get("PORTAL_DEMO_PASSWORD", "bench-portal-pass-1"))
    p.add_argument("--repeat", type=int, default=10, help="profiled requests per path (10)")
    p.add_argument("--no-explain", action="store_true", help="do not print EXPLAIN")
    p.add_argument("--profile-lines", type=int, default=60, help="lines of each profile printed (60)")
    p.add_argument("--flat", action="store_true", help="print the profile flat: functions by own time")
    args = p.parse_args(argv)

    import asyncio

    import anyio.to_thread
    import httpx
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer
    from sqlalchemy import event

    from portal.app import create_app
    from portal.core.db import get_engine

    async def inline(func, *a, **_kw):  # run "threadpool" work in this thread, where the profiler samples
        return func(*a)

    anyio.to_thread.run_sync = inline

    engine = get_engine()
    statements: list[tuple[str, object, float]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):
        started = conn.info["t0"].pop()
        statements.append((statement, parameters, (time.perf_counter() - started) * 1000))

    app = create_app(engine)

    async def run() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/admin/login")  # the login form's pre-login CSRF token
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = await client.post("/admin/login", data={"username": args.user, "password": args.password,
                                                        "csrf_token": html.unescape(token)})
            if r.status_code != 302:
                print(f"login as {args.user} failed: {r.status_code}", file=sys.stderr)
                return 1
            for path in args.paths:
                print(f"\n=== {path}")
                await client.get(path)  # fill caches (templates, compiled SQL, pool)
                statements.clear()
                t0 = time.perf_counter()
                r = await client.get(path)
                total = (time.perf_counter() - t0) * 1000
                seen = list(statements)
                print(f"status {r.status_code}, {len(r.content):,} bytes, {total:.1f} ms, {len(seen)} statements, "
                      f"{sum(s[2] for s in seen):.1f} ms in the database driver")
                for statement, params, ms in seen:
                    print(f"--- {ms:8.1f} ms  {' '.join(statement.split())[:600]}  {str(params)[:200]}")
                    if (not args.no_explain and engine.dialect.name != "sqlite"
                            and statement.lstrip().upper().startswith("SELECT")):
                        with engine.connect() as conn:
                            for row in conn.exec_driver_sql("EXPLAIN " + statement, params or ()).all():
                                print("      " + " | ".join("" if v is None else str(v) for v in row))
                cpu, wall = [], []
                for _ in range(args.repeat):
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await client.get(path)
                    cpu.append((time.process_time() - cpu0) * 1000)
                    wall.append((time.perf_counter() - wall0) * 1000)
                print(f"without the profiler, {args.repeat} requests: CPU of this process per request "
                      f"min {min(cpu):.1f} ms, median {statistics.median(cpu):.1f} ms; wall min {min(wall):.1f} ms, "
                      f"median {statistics.median(wall):.1f} ms")
                if args.profile_lines <= 0:
                    continue
                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
                for _ in range(args.repeat):
                    await client.get(path)
                profiler.stop()
                out = profiler.output(ConsoleRenderer(flat=args.flat, time="percent_of_total"))
                print("\n".join(out.splitlines()[: args.profile_lines]))
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
