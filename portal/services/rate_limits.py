"""Fixed-window rate limits shared by every process, kept in the ``throttle_bucket`` table.

A key (``"lookup-ip:203.0.113.7"``, later ``"login-user:alice"``) may be hit ``limit``
times per window of ``window_seconds``. Windows are aligned to the epoch
(``window_start = floor(now / window) * window``), so every process computes the same
window without coordination, and the counter lives in the database, so several
processes and machines share one budget.

The counter is changed only by conditional statements whose row count says whether
the hit was allowed, never by read-modify-write in Python:

1. ``UPDATE ... SET hits = hits + 1 WHERE key = :k AND window_start = :w AND hits < :limit``
   (the usual case: the key is in the current window and has budget left);
2. ``UPDATE ... SET window_start = :w, hits = 1 WHERE key = :k AND window_start < :w``
   (the key's last window is over: start a new one);
3. ``INSERT (key, :w, 1)`` in a savepoint (first hit of a new key); if another process
   inserted the key at the same moment, the unique key refuses ours and step 1 is
   tried once more.

If none of these wins, the key is over its limit in the current window.

Call :func:`hit` in a transaction of its own (``run_in_transaction(hit, key, ...)``), so
the hit counts even when the request it guards then fails.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import ThrottleBucket
from portal.core import clock

MAX_KEY_LENGTH = 120
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime, window_seconds: int) -> datetime:
    """Start of the fixed window that contains ``now``.

    Args:
        now (datetime): an aware datetime.
        window_seconds (int): window length in seconds (>= 1).

    Returns:
        datetime: aware UTC datetime, a whole multiple of ``window_seconds`` since the epoch.
    """
    seconds = int((now.astimezone(UTC) - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % window_seconds)


def hit(
    db: Session,
    key: str,
    *,
    limit: int,
    window_seconds: int,
    now: datetime | None = None,
) -> tuple[bool, int]:
    """Count one hit of ``key`` and say whether it is within the limit.

    Args:
        db (Session): an open transaction (best: one of its own, committed at once).
        key (str): what is limited, e.g. ``"lookup-ip:203.0.113.7"``; cut to 120 characters.
        limit (int): hits allowed per window (>= 1).
        window_seconds (int): window length in seconds (>= 1).
        now (datetime | None): the current time (aware), for tests; now when omitted.

    Returns:
        tuple[bool, int]: ``(allowed, retry_after_seconds)``. ``allowed`` is False when the
        key already had ``limit`` hits in this window (the refused hit is not counted);
        ``retry_after_seconds`` is then the whole seconds until the window ends (>= 1),
        and 0 when allowed.

    Raises:
        ValueError: ``limit`` or ``window_seconds`` below 1.
    """
    if limit < 1 or window_seconds < 1:
        raise ValueError("limit and window_seconds must be at least 1")
    now = (now or clock.now()).astimezone(UTC)
    key = key[:MAX_KEY_LENGTH]
    start = window_start(now, window_seconds)
    table = ThrottleBucket.__table__
    c = table.c

    def counted() -> bool:
        return db.execute(
            update(table).where(c.key == key, c.window_start == start, c.hits < limit).values(hits=c.hits + 1)
        ).rowcount == 1

    if counted():
        return True, 0
    renewed = db.execute(
        update(table).where(c.key == key, c.window_start < start).values(window_start=start, hits=1)
    ).rowcount
    if renewed == 1:
        return True, 0
    try:
        with db.begin_nested():
            db.execute(insert(table).values(key=key, window_start=start, hits=1))
        return True, 0
    except IntegrityError:
        pass  # the key exists: in this window and full, or just inserted by another process
    if counted():
        return True, 0
    retry_after = math.ceil((start + timedelta(seconds=window_seconds) - now).total_seconds())
    return False, max(retry_after, 1)


def purge(db: Session, *, older_than_seconds: int, now: datetime | None = None) -> int:
    """Delete buckets whose window started more than ``older_than_seconds`` ago.

    Buckets are tiny but one is kept per key ever seen; run this now and then (e.g. daily)
    with the longest window in use.

    Args:
        db (Session): an open transaction.
        older_than_seconds (int): age in seconds beyond which a bucket is stale.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        int: how many buckets were deleted.
    """
    now = (now or clock.now()).astimezone(UTC)
    cutoff = now - timedelta(seconds=older_than_seconds)
    table = ThrottleBucket.__table__
    return db.execute(delete(table).where(table.c.window_start < cutoff)).rowcount
