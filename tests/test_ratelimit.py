"""The shared fixed-window rate limiter (``portal.services.rate_limits``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import ThrottleBucket
from portal.core import clock
from portal.core.db import run_in_transaction, transaction
from portal.services import rate_limits

T0 = datetime(2026, 11, 21, 8, 0, 10, tzinfo=UTC)  # 10 s into a minute window


def hit(engine, key="k", *, limit=3, window=60, now=T0):
    return run_in_transaction(rate_limits.hit, key, limit=limit, window_seconds=window, now=now, engine=engine)


def test_allows_the_limit_then_refuses_with_retry_after(engine):
    assert [hit(engine) for _ in range(3)] == [(True, 0)] * 3
    assert hit(engine) == (False, 50)
    assert hit(engine, now=T0 + timedelta(seconds=49, milliseconds=500)) == (False, 1)
    with transaction(engine, write=False) as db:
        bucket = db.get(ThrottleBucket, "k")
    assert bucket.hits == 3  # refused hits are not counted
    assert bucket.window_start == datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)


def test_a_new_window_starts_afresh(engine):
    for _ in range(3):
        hit(engine)
    assert hit(engine)[0] is False
    assert hit(engine, now=T0 + timedelta(seconds=50)) == (True, 0)
    with transaction(engine, write=False) as db:
        assert db.get(ThrottleBucket, "k").hits == 1


def test_keys_are_independent(engine):
    for _ in range(3):
        hit(engine, "a")
    assert hit(engine, "a")[0] is False
    assert hit(engine, "b") == (True, 0)


def test_long_keys_are_cut_and_bad_limits_refused(engine):
    assert hit(engine, "x" * 500) == (True, 0)
    with transaction(engine, write=False) as db:
        assert db.scalar(select(ThrottleBucket.key)) == "x" * 120
    with pytest.raises(ValueError):
        hit(engine, limit=0)


def test_purge_removes_old_buckets(engine):
    hit(engine, "old", now=T0 - timedelta(days=2))
    hit(engine, "new")
    with transaction(engine) as db:
        assert rate_limits.purge(db, older_than_seconds=3600, now=T0) == 1
    with transaction(engine, write=False) as db:
        assert db.scalars(select(ThrottleBucket.key)).all() == ["new"]


def test_concurrent_hits_never_exceed_the_limit(engine):
    """Threads (and, on MariaDB, separate connections racing on one row) share one budget."""
    outcomes: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def attempt():
        barrier.wait()
        allowed, _ = hit(engine, "race", limit=5)
        with lock:
            outcomes.append(allowed)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 7 + [True] * 5


def test_housekeeping_command_purges_stale_buckets(engine, db_url, monkeypatch, capsys):
    import main
    from portal.core.settings import get_settings

    now = clock.now()
    hit(engine, "stale", now=now - timedelta(days=2))
    hit(engine, "fresh", now=now)
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert main.main(["housekeeping", "--older-than-hours", "0"]) == 2
        assert main.main(["housekeeping"]) == 0
    finally:
        get_settings.cache_clear()
    assert "deleted 1 throttle bucket(s) older than 24 h" in capsys.readouterr().out
    with transaction(engine, write=False) as db:
        assert db.scalars(select(ThrottleBucket.key)).all() == ["fresh"]
