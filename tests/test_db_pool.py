"""The MySQL connection pool of a portal process: at most ``DB_POOL_SIZE`` connections,
kept open while requests queue for them (MariaDB pass only; SQLite has no pool to size).

Opening a connection is expensive here (PyMySQL builds a TLS context for each one, about
10 ms of CPU): a pool that opened extra connections under load and closed them when they
came back spent half the workers' CPU doing so in the booking rush benchmark."""

from __future__ import annotations

import threading

from sqlalchemy import event, text

from portal.core.db import build_engine


def test_more_concurrent_transactions_than_connections_queue_for_the_same_connections(mysql_only, db_url):
    engine = build_engine(db_url, pool_size=2)
    opened = []
    event.listen(engine, "connect", lambda *args: opened.append(1))
    holding = threading.Semaphore(0)
    gate = threading.Event()
    errors = []

    def transaction() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                holding.release()
                gate.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=transaction) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        holding.acquire(timeout=30)
        holding.acquire(timeout=30)  # two threads hold the pool's two connections; four wait
        assert engine.pool.checkedout() == 2
        gate.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        gate.set()
        engine.dispose()
    assert errors == []
    assert len(opened) == 2  # the waiting threads got the same two connections, none was reopened
