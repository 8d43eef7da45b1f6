"""Slow down password guessing: per-username lockout and a per-address budget.

* Per username: after ``USER_FAILURES`` failed logins in a row the name is locked for
  ``USER_LOCK``. A real account keeps its count in ``StaffUser.failed_logins`` /
  ``locked_until``; an unknown name keeps the same count in a ``ThrottleBucket``
  (``login-user:<name>``) with the same rules, so the answer ("try again in N
  minutes") never tells whether the account exists.
* Per client address: more than ``IP_FAILURES`` failed logins in a fixed window of
  ``IP_WINDOW`` refuse every login from it until the window ends (``login-ip:<ip>``).

Every counter moves with one conditional UPDATE whose WHERE clause holds the rule, so
concurrent requests in several processes never lose a failure or unlock early; the
caller's transaction (the login's, which also writes the audit event) commits them.
(``portal.services.rate_limits`` counts requests per window; a login needs a "peek
before verifying" check and a lockout that ends on its own, so it keeps its own counters.)
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import StaffUser, ThrottleBucket
from models._types import UTCDateTime

USER_FAILURES = 5
USER_LOCK = timedelta(minutes=15)
IP_FAILURES = 20
IP_WINDOW = timedelta(minutes=10)


def user_key(username: str) -> str:
    """Bucket key of an unknown username."""
    return f"login-user:{username}"[:120]


def ip_key(ip: str) -> str:
    """Bucket key of a client address."""
    return f"login-ip:{ip}"[:120]


def refusal_message(wait: timedelta) -> str:
    """The sentence shown on the login page while logins are refused for ``wait``."""
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return f"Too many failed attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _at(now: datetime) -> sa.BindParameter:
    return sa.literal(now, UTCDateTime())


def _bucket(db: Session, key: str) -> ThrottleBucket | None:
    row = db.execute(
        sa.select(ThrottleBucket.window_start, ThrottleBucket.hits).where(ThrottleBucket.key == key)
    ).one_or_none()
    return None if row is None else ThrottleBucket(key=key, window_start=row[0], hits=row[1])


def _insert_bucket(db: Session, key: str, now: datetime, hits: int) -> bool:
    """Insert a new bucket; False when another request inserted it first."""
    try:
        with db.begin_nested():
            db.execute(sa.insert(ThrottleBucket).values(key=key, window_start=now, hits=hits))
        return True
    except IntegrityError:
        return False


def wait_time(db: Session, *, username: str, user: StaffUser | None, ip: str | None, now: datetime) -> timedelta | None:
    """How long logins for ``username`` from ``ip`` are still refused, or None.

    Args:
        db (Session): the login's transaction.
        username (str): the name typed in.
        user (StaffUser | None): its account, when it exists.
        ip (str | None): the client's address.
        now (datetime): the current time (aware).
    """
    waits: list[timedelta] = []
    if user is not None:
        locked_until = db.execute(
            sa.select(StaffUser.locked_until).where(StaffUser.id == user.id)
        ).scalar_one_or_none()
        if locked_until is not None and locked_until > now:
            waits.append(locked_until - now)
    else:
        bucket = _bucket(db, user_key(username))
        if bucket and bucket.hits >= USER_FAILURES and bucket.window_start + USER_LOCK > now:
            waits.append(bucket.window_start + USER_LOCK - now)
    if ip:
        bucket = _bucket(db, ip_key(ip))
        if bucket and bucket.hits >= IP_FAILURES and bucket.window_start + IP_WINDOW > now:
            waits.append(bucket.window_start + IP_WINDOW - now)
    return max(waits) if waits else None


def record_failure(db: Session, *, username: str, user: StaffUser | None, ip: str | None, now: datetime) -> timedelta | None:
    """Count one failed login; return how long logins are now refused (or None).

    The failure that reaches the limit starts the lock, so its own answer already
    says "try again in N minutes".
    """
    if user is not None:
        _count_user_failure(db, user.id, now)
    else:
        _count_name_failure(db, user_key(username), now)
    if ip:
        _count_ip_failure(db, ip_key(ip), now)
    return wait_time(db, username=username, user=user, ip=ip, now=now)


def record_success(db: Session, *, user: StaffUser) -> None:
    """Forget the account's failed logins after a good one."""
    db.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user.id, sa.or_(StaffUser.failed_logins != 0, StaffUser.locked_until.is_not(None)))
        .values(failed_logins=0, locked_until=None)
    )


def _count_user_failure(db: Session, user_id: int, now: datetime) -> None:
    # An expired lock starts a new count.
    db.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user_id, StaffUser.locked_until <= _at(now))
        .values(failed_logins=0, locked_until=None)
    )
    # ``locked_until`` is assigned first: MySQL evaluates SET left to right, and both
    # assignments must see the old ``failed_logins`` (as SQLite and MariaDB's
    # SIMULTANEOUS_ASSIGNMENT mode do anyway). Only an unlocked account counts.
    db.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user_id, StaffUser.locked_until.is_(None))
        .ordered_values(
            (StaffUser.locked_until, sa.case(
                (StaffUser.failed_logins + 1 >= USER_FAILURES, _at(now + USER_LOCK)), else_=sa.null()
            )),
            (StaffUser.failed_logins, StaffUser.failed_logins + 1),
        )
    )


def _count_name_failure(db: Session, key: str, now: datetime) -> None:
    # Same rules as an account: ``hits`` counts failures, ``window_start`` is when the
    # lock started once ``hits`` reached the limit.
    db.execute(
        sa.update(ThrottleBucket)
        .where(
            ThrottleBucket.key == key,
            ThrottleBucket.hits >= USER_FAILURES,
            ThrottleBucket.window_start <= _at(now - USER_LOCK),
        )
        .values(hits=0, window_start=_at(now))
    )
    for _ in range(2):
        counted = db.execute(
            sa.update(ThrottleBucket)
            .where(ThrottleBucket.key == key, ThrottleBucket.hits < USER_FAILURES)
            .ordered_values(
                (ThrottleBucket.window_start, sa.case(
                    (ThrottleBucket.hits + 1 >= USER_FAILURES, _at(now)), else_=ThrottleBucket.window_start
                )),
                (ThrottleBucket.hits, ThrottleBucket.hits + 1),
            )
        ).rowcount
        if counted or _bucket(db, key) is not None:
            return  # counted, or already locked
        if _insert_bucket(db, key, now, 1):
            return


def _count_ip_failure(db: Session, key: str, now: datetime) -> None:
    for _ in range(2):
        in_window = db.execute(
            sa.update(ThrottleBucket)
            .where(ThrottleBucket.key == key, ThrottleBucket.window_start > _at(now - IP_WINDOW))
            .values(hits=ThrottleBucket.hits + 1)
        ).rowcount
        if in_window:
            return
        restarted = db.execute(
            sa.update(ThrottleBucket)
            .where(ThrottleBucket.key == key, ThrottleBucket.window_start <= _at(now - IP_WINDOW))
            .values(hits=1, window_start=_at(now))
        ).rowcount
        if restarted or _insert_bucket(db, key, now, 1):
            return
