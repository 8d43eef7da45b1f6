"""Time the dashboard and the report pages on a hospital 100 times the demo size.

    python bench/reports.py                       # seed (or reuse) portal_bench_reports, measure, record
    python bench/reports.py --reseed --requests 30
    python bench/reports.py --no-record           # print only

What it does:

1. makes sure the MariaDB database ``--db`` on ``--server`` exists and holds a hospital:
   an empty one is seeded with ``python main.py seed --scale 100`` (``--reseed`` drops and
   seeds it again); a reused one must have been seeded by this script (its password);
2. starts the portal on it (``python main.py --port N --no-demo``, one worker);
3. after a fresh seed, waits (at most two minutes) for InnoDB to write out the pages the
   load left dirty, so the figures are of a settled database, not of the load's aftermath;
4. logs in as each demo role, requests every page once (to warm caches), then per page
   ``--warmup`` times unmeasured and ``--requests`` times measured, one at a time;
5. prints median and p95 per page, appends the table with the command, the git commit and
   the machine (nproc, CPU model) to ``docs/benchmarks.md``, stops the server and ends with
   a summary. The exit status is 1 when a page's p95 is over the budget (1 s).

Only the standard library and SQLAlchemy/PyMySQL (from ``requirements.txt``) are used.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-reports-pass-1"
BUDGET_SECONDS = 1.0
LOG = ROOT / "bench" / "results" / "reports-server.log"


def say(message: str) -> None:
    """Print one progress line at once."""
    print(message, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="mysql+pymysql://root@127.0.0.1:3306", help="MariaDB server URL (no database)")
    p.add_argument("--db", default="portal_bench_reports", help="database to seed or reuse")
    p.add_argument("--scale", type=int, default=100, help="seed size multiplier (100 = 100 x the demo)")
    p.add_argument("--reseed", action="store_true", help="drop the database and seed it again")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--requests", type=int, default=20, help="measured requests per page")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured requests per page first")
    p.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    return p.parse_args(argv)


# -- database ---------------------------------------------------------------------------------
def prepare_database(args: argparse.Namespace, url: str) -> dict[str, int]:
    """Create, seed or reuse the database; return its main row counts."""
    from sqlalchemy import create_engine, text

    admin = create_engine(args.server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if args.reseed:
            say(f"Dropping {args.db} (--reseed)...")
            conn.execute(text(f"DROP DATABASE IF EXISTS `{args.db}`"))
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{args.db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    engine = create_engine(url)
    counts = _counts(engine)
    if counts.get("patient"):
        say(f"Reusing {args.db}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    else:
        say(f"Seeding {args.db} at scale {args.scale} (python main.py seed --scale {args.scale})...")
        started = time.perf_counter()
        env = {**os.environ, "DATABASE_URL": url, "PORTAL_DEMO_PASSWORD": PASSWORD, "SECRET_KEY": "bench-reports"}
        proc = subprocess.Popen([sys.executable, "main.py", "seed", "--scale", str(args.scale)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() and "bench-reports-pass" not in line:
                say("  seed | " + line.rstrip())
        if proc.wait() != 0:
            raise SystemExit("Seeding failed (see above).")
        say(f"Seeded in {time.perf_counter() - started:.0f} s.")
        counts = _counts(engine)
        wait_until_settled(url)
    engine.dispose()
    return counts


def wait_until_settled(url: str, limit_seconds: float = 120) -> None:
    """Wait until InnoDB's dirty buffer-pool pages stop falling (or the limit passes)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    started, previous = time.monotonic(), None
    with engine.connect() as conn:
        while time.monotonic() - started < limit_seconds:
            dirty = int(conn.execute(text("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")).one()[1])
            if dirty < 200 or (previous is not None and dirty >= previous):
                break
            say(f"  waiting for the database to settle: {dirty:,} dirty pages...")
            previous = dirty
            time.sleep(5)
    engine.dispose()


def server_facts(url: str) -> str:
    """MariaDB version, buffer pool size and the database's size, as one line."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT VERSION()")).scalar_one()
        pool = conn.execute(text("SELECT @@innodb_buffer_pool_size")).scalar_one()
        size = conn.execute(text(
            "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()"
        )).scalar_one()
    engine.dispose()
    return f"MariaDB {version}, buffer pool {int(pool) // 2**20} MB, database {int(size or 0) // 2**20} MB"


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews timings)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def _counts(engine) -> dict[str, int]:
    from sqlalchemy import inspect, text

    tables = ("patient", "doctor", "schedule", "appointment", "prescription", "stock_movement")
    present = set(inspect(engine).get_table_names())
    out = {}
    with engine.connect() as conn:
        for t in tables:
            if t in present:
                out[t] = conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
    return out


# -- server and client ----------------------------------------------------------------------------
def start_server(args: argparse.Namespace, url: str) -> subprocess.Popen:
    """Start ``python main.py --port N --no-demo`` and wait until it answers."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-reports", "PORTAL_DEMO_PASSWORD": PASSWORD}
    LOG.parent.mkdir(exist_ok=True)
    log = LOG.open("w")  # noqa: SIM115 - lives as long as the server
    say(f"Starting the portal on port {args.port} (log: {LOG.relative_to(ROOT)})...")
    proc = subprocess.Popen([sys.executable, "main.py", "--port", str(args.port), "--no-demo"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"The server stopped at start-up; see {LOG.relative_to(ROOT)}.")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{args.port}/_ping", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("The server did not answer within 60 s.")


def client_for(port: int, username: str) -> urllib.request.OpenerDirector:
    """A cookie-keeping HTTP client logged in as ``username``."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    body = urllib.parse.urlencode({"username": username, "password": PASSWORD}).encode()
    try:
        opener.open(f"http://127.0.0.1:{port}/admin/login", data=body, timeout=60).read()
    except urllib.error.HTTPError:
        pass  # a refused login answers 400; the missing cookie below says so
    if not any(c.name == "portal_staff" for c in jar):
        raise SystemExit(f"Could not log in as {username}: was the database seeded by another program? Use --reseed.")
    return opener


def measure(opener, url: str, warmup: int, n: int) -> list[float]:
    """Seconds of ``n`` sequential GETs of ``url`` (after ``warmup`` unmeasured ones)."""
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


# -- record -----------------------------------------------------------------------------------------
def machine() -> str:
    """``nproc``, CPU model, Python and MariaDB versions, as one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()}"


def git_commit() -> str:
    """Short commit id, with ``+dirty`` when the work tree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(rows: list[tuple[str, list[float]]]) -> str:
    """A Markdown table of median, p95 and max per page, in milliseconds."""
    lines = ["| page | median ms | p95 ms | max ms | within 1 s |", "|---|---:|---:|---:|:---:|"]
    for label, times in rows:
        ok = "yes" if p95(times) <= BUDGET_SECONDS else "**no**"
        lines.append(f"| {label} | {statistics.median(times) * 1000:,.0f} | {p95(times) * 1000:,.0f} | "
                     f"{max(times) * 1000:,.0f} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    from sqlalchemy.engine import make_url

    url = make_url(args.server).set(database=args.db).render_as_string(hide_password=False)
    counts = prepare_database(args, url)
    server = start_server(args, url)
    results: list[tuple[str, list[float]]] = []
    load_before = load_average()
    try:
        openers: dict[str, urllib.request.OpenerDirector] = {}
        today = datetime.now(ZoneInfo(os.environ.get("PORTAL_TIMEZONE", "Asia/Shanghai"))).date()
        plan = pages(today)
        say(f"Warming up: every page once ({len(plan)} pages)...")
        for label, user, path in plan:
            if user not in openers:
                openers[user] = client_for(args.port, user)
            measure(openers[user], f"http://127.0.0.1:{args.port}{path}", 0, 1)
        for i, (label, user, path) in enumerate(plan, start=1):
            say(f"[{i}/{len(plan)}] {label}: {args.warmup} warm-up + {args.requests} measured requests...")
            times = measure(openers[user], f"http://127.0.0.1:{args.port}{path}", args.warmup, args.requests)
            results.append((label, times))
            say(f"        median {statistics.median(times) * 1000:,.0f} ms, p95 {p95(times) * 1000:,.0f} ms")
    finally:
        say("Stopping the server...")
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    load_after = load_average()
    report = table(results)
    command = "python " + " ".join(shlex.quote(a) for a in ["bench/reports.py", *(argv if argv is not None else sys.argv[1:])])
    header = (
        f"## Dashboard and reports, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n\n"
        f"- command: `{command}`\n"
        f"- commit: `{git_commit()}`\n"
        f"- machine: {machine()}; {server_facts(url)}; load average {load_before} at the start, "
        f"{load_after} at the end (the machine is shared)\n"
        f"- data: `main.py seed --scale {args.scale}` ("
        + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items())
        + f"); one uvicorn worker; {args.requests} sequential requests per page after {args.warmup} warm-up\n"
    )
    print()
    print(header)
    print(report)
    if not args.no_record:
        out = ROOT / "docs" / "benchmarks.md"
        out.parent.mkdir(exist_ok=True)
        new = not out.exists()
        with out.open("a", encoding="utf-8") as fh:
            if new:
                fh.write("# Benchmarks\n\nAppended by the scripts in `bench/`; newest last.\n")
            fh.write("\n" + header + "\n" + report + "\n")
        say(f"\nAppended to {out.relative_to(ROOT)}.")
    slow = [label for label, times in results if p95(times) > BUDGET_SECONDS]
    worst = max(results, key=lambda r: p95(r[1]))
    if slow:
        say(f"Summary: {len(slow)} of {len(results)} pages over the 1 s budget at p95: {', '.join(slow)}.")
        return 1
    say(f"Summary: all {len(results)} pages within the 1 s budget at p95; slowest is {worst[0]} "
        f"(p95 {p95(worst[1]) * 1000:,.0f} ms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
