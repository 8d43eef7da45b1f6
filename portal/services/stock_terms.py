"""The pharmacy's stock terms, each defined once: usable stock, below reorder level,
expiring within the window, past expiry but still active.

Every place that uses one of these words asks this module: the dispensing service
(what FEFO may take), the stock service's lists, the dashboard's tiles, the admin list
filters those tiles link to, and the pharmacy report. So a tile's figure and the list
behind it always hold the same rows. Each term is a SQL condition (or a correlated
subquery) that composes with any query; dates are hospital-local
(``portal.core.clock``).

Definitions (hospital pharmacy practice: first-expiry-first-out, WHO good storage and
distribution practice):

* *Usable* batch: status ``active`` and expiry date after today. Dispensing takes only
  usable batches; an expired batch is never handed out, even on its expiry day.
* *Usable stock* of a medicine: the sum of ``quantity_on_hand`` of its usable batches
  (dispensing units).
* *Below reorder level*: an active medicine with a reorder level above 0 whose usable
  stock is strictly below it (at the level exactly is not yet an alert).
* *Expiring within N days*: an active batch with stock whose expiry date is after today
  and at most N days away (N: the ``EXPIRY_WINDOW_DAYS`` setting, 30 by default).
* *Past expiry, still active*: an active batch with stock whose expiry date is today or
  earlier: it can no longer be dispensed and should be written off.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from models import BatchStatus, Medicine, StockBatch
from portal.core.settings import get_settings

__all__ = [
    "batch_expired_but_active", "batch_expiring_within", "expiry_window_days",
    "medicine_below_reorder_level", "medicine_has_batch_expiring_within", "usable_batch", "usable_stock_of_medicine",
]


def expiry_window_days() -> int:
    """Days ahead within which a batch counts as "expiring soon" (``EXPIRY_WINDOW_DAYS``)."""
    return get_settings().expiry_window_days


def usable_batch(today: date) -> tuple[Any, ...]:
    """WHERE clauses of a usable batch on hospital-local ``today``: active, expiry after today."""
    return (StockBatch.status == BatchStatus.active, StockBatch.expiry_date > today)


def usable_stock_of_medicine(today: date) -> Any:
    """Correlated scalar subquery: usable stock (units) of the outer query's ``Medicine``."""
    return (
        select(func.coalesce(func.sum(StockBatch.quantity_on_hand), 0))
        .where(StockBatch.medicine_id == Medicine.id, *usable_batch(today))
        .correlate(Medicine)
        .scalar_subquery()
    )


def medicine_below_reorder_level(today: date) -> ColumnElement[bool]:
    """Condition on ``Medicine``: active, reorder level above 0, usable stock below it."""
    return and_(Medicine.is_active.is_(True), Medicine.reorder_level > 0,
                usable_stock_of_medicine(today) < Medicine.reorder_level)


def batch_expiring_within(today: date, days: int | None = None) -> ColumnElement[bool]:
    """Condition on ``StockBatch``: active, holds stock, expires in (today, today + days].

    Args:
        today (date): the hospital-local date.
        days (int | None): the window in days; the ``EXPIRY_WINDOW_DAYS`` setting when None.
    """
    days = expiry_window_days() if days is None else days
    return and_(
        StockBatch.status == BatchStatus.active,
        StockBatch.quantity_on_hand > 0,
        StockBatch.expiry_date > today,
        StockBatch.expiry_date <= today + timedelta(days=days),
    )


def batch_expired_but_active(today: date) -> ColumnElement[bool]:
    """Condition on ``StockBatch``: active, holds stock, expiry date today or earlier."""
    return and_(
        StockBatch.status == BatchStatus.active,
        StockBatch.quantity_on_hand > 0,
        StockBatch.expiry_date <= today,
    )


def medicine_has_batch_expiring_within(today: date, days: int | None = None) -> ColumnElement[bool]:
    """Condition on ``Medicine``: at least one of its batches is expiring within the window."""
    return exists().where(StockBatch.medicine_id == Medicine.id, batch_expiring_within(today, days))
