"""Private helpers of the stock and dispensing services: the
usable-batch rule, guarded takes from a batch and ledger (StockMovement) rows.

Everything here runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from models import BatchStatus, Medicine, MovementKind, StockBatch, StockMovement
from portal.core.actor import Actor
from portal.core.errors import ConcurrentChange, NotFound, ValidationFailed
from portal.services.stock_terms import usable_batch

R = TypeVar("R")

#: How many times a conditional UPDATE that lost a race is re-read and tried again
#: before the service gives up with ConcurrentChange.
MAX_RETRIES = 5

#: Largest count or amount a stock column stores (an INTEGER: 32 bits on MariaDB).
MAX_COUNT = 2**31 - 1

def fresh_reads(read: Callable[[], R], *, attempts: int = MAX_RETRIES,
                gave_up: ConcurrentChange | None = None) -> Iterator[R]:
    """The read / conditional UPDATE / retry loop of every stock change, in one place.

    Yields ``read()`` afresh up to ``attempts`` times. The caller checks what it read
    (raising its domain error when the change is not allowed), runs its conditional
    UPDATE (``WHERE`` the row is still as read) and ``break``s when it matched; when it
    lost the race it simply continues, and the row is read again. Asking for another
    read after the last one raises ``gave_up`` (default ``ConcurrentChange()``)::

        for batch in fresh_reads(lambda: read_batch(db, batch_id)):
            if batch.status is not BatchStatus.active:
                raise BatchNotUsable(...)
            if db.execute(update(StockBatch).where(..., StockBatch.status == batch.status)...).rowcount:
                break

    Args:
        read (Callable[[], R]): reads the row (or the values the change depends on).
        attempts (int): how many reads before giving up.
        gave_up (ConcurrentChange | None): raised after the last attempt.

    Raises:
        ConcurrentChange: the row kept changing between the read and the UPDATE.
    """
    for _ in range(attempts):
        yield read()
    raise gave_up or ConcurrentChange()


#: UPDATE options: the services re-read what they return, so the ORM need not
#: synchronise objects in the session (which would cost an extra SELECT on MySQL).
NO_SYNC = {"synchronize_session": False}


def require_count(value: Any, what: str, *, field: str, minimum: int, maximum: int = MAX_COUNT) -> int:
    """Return ``value`` if it is a whole number from ``minimum`` to ``maximum``.

    ``what`` names the value in the message ("quantity received"), ``field`` the argument
    it came in (``quantity``), which the error carries for the form.

    Raises:
        ValidationFailed: not a whole number, below ``minimum``, or above ``maximum``
            (by default :data:`MAX_COUNT`, the most the stock columns store).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"The {what} must be a whole number.", field=field)
    if value < minimum:
        raise ValidationFailed(f"The {what} must be at least {minimum}.", field=field)
    if value > maximum:
        raise ValidationFailed(f"The {what} must be at most {maximum:,}.", field=field)
    return value


def require_text(value: str | None, what: str, *, field: str, max_length: int = 255) -> str:
    """Return ``value`` stripped; ValidationFailed (about ``field``) when blank or longer than ``max_length``."""
    text = (value or "").strip()
    if not text:
        raise ValidationFailed(f"Enter the {what}.", field=field)
    if len(text) > max_length:
        raise ValidationFailed(f"The {what} can have at most {max_length} characters.", field=field)
    return text


@dataclass(frozen=True)
class BatchState:
    """A batch as just read (one SELECT of columns, never a cached ORM object)."""

    id: int
    medicine_id: int
    lot_number: str
    expiry_date: date
    quantity_on_hand: int
    unit_cost: int
    status: BatchStatus
    medicine: str

    @property
    def label(self) -> str:
        """e.g. ``batch L123 of Amoxicillin 500 mg Capsule``."""
        return f"batch {self.lot_number} of {self.medicine}"


def read_batch(db: Session, batch_id: int) -> BatchState:
    """Read a batch's current state (latest committed, or this transaction's own change).

    Raises:
        NotFound: no batch with that id.
    """
    row = db.execute(
        select(
            StockBatch.id, StockBatch.medicine_id, StockBatch.lot_number, StockBatch.expiry_date,
            StockBatch.quantity_on_hand, StockBatch.unit_cost, StockBatch.status,
            Medicine.name, Medicine.strength, Medicine.form,
        )
        .join(Medicine, Medicine.id == StockBatch.medicine_id)
        .where(StockBatch.id == batch_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"Stock batch #{batch_id} does not exist.")
    label = " ".join(p for p in (row.name, row.strength, row.form) if p)
    return BatchState(
        id=row.id, medicine_id=row.medicine_id, lot_number=row.lot_number,
        expiry_date=row.expiry_date, quantity_on_hand=row.quantity_on_hand,
        unit_cost=row.unit_cost, status=row.status, medicine=label,
    )


@dataclass(frozen=True)
class Take:
    """Units taken from one batch by :func:`take_from_batch`."""

    batch_id: int
    quantity: int
    balance_after: int
    unit_cost: int


def take_from_batch(
    db: Session, *, batch_id: int, wanted: int, on_hand: int, today: date
) -> Take | None:
    """Take up to ``wanted`` units from a usable batch with a conditional UPDATE.

    ``UPDATE stock_batch SET quantity_on_hand = quantity_on_hand - :n WHERE id = :id
    AND quantity_on_hand >= :n AND status = 'active' AND expiry_date > :today`` with
    ``n = min(wanted, on_hand)``. When the UPDATE matches no row (another transaction
    took stock first, or changed the status) the batch is re-read and the take retried
    with what is left; None when the batch has nothing usable left. The batch row stays
    locked (MySQL) until the caller's transaction ends, so the balance read back after
    the UPDATE is this transaction's own. A batch left at zero becomes ``depleted``.

    Returns:
        Take | None: units taken (>= 1), balance after, unit cost; None if none taken.
    """
    for _ in range(MAX_RETRIES * 10):
        n = min(wanted, on_hand)
        if n <= 0:
            return None
        won = db.execute(
            update(StockBatch)
            .where(
                StockBatch.id == batch_id,
                StockBatch.quantity_on_hand >= n,
                *usable_batch(today),
            )
            .values(quantity_on_hand=StockBatch.quantity_on_hand - n)
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            balance, unit_cost = db.execute(
                select(StockBatch.quantity_on_hand, StockBatch.unit_cost).where(StockBatch.id == batch_id)
            ).one()
            if balance == 0:
                mark_depleted_if_empty(db, batch_id)
            return Take(batch_id=batch_id, quantity=n, balance_after=balance, unit_cost=unit_cost)
        now = db.execute(
            select(StockBatch.quantity_on_hand, StockBatch.status, StockBatch.expiry_date)
            .where(StockBatch.id == batch_id)
        ).one()
        if now.status != BatchStatus.active or now.expiry_date <= today:
            return None
        on_hand = now.quantity_on_hand
    raise ConcurrentChange("Stock of this medicine is changing too fast to dispense; please try again.")


def mark_depleted_if_empty(db: Session, batch_id: int) -> None:
    """Set an active batch to ``depleted`` if (and only if) its quantity is now zero."""
    db.execute(
        update(StockBatch)
        .where(
            StockBatch.id == batch_id,
            StockBatch.quantity_on_hand == 0,
            StockBatch.status == BatchStatus.active,
        )
        .values(status=BatchStatus.depleted)
        .execution_options(**NO_SYNC)
    )


def add_movement(
    db: Session,
    *,
    batch_id: int,
    medicine_id: int,
    kind: MovementKind,
    quantity: int,
    balance_after: int,
    unit_cost: int,
    actor: Actor,
    note: str | None = None,
    prescription_item_id: int | None = None,
    witness_user_id: int | None = None,
) -> int:
    """Append one StockMovement (ledger row) and return its id.

    Call it after the batch's conditional UPDATE, so ``balance_after`` is the balance
    this transaction read back while holding the batch row.
    """
    result = db.execute(
        insert(StockMovement).values(
            batch_id=batch_id,
            medicine_id=medicine_id,
            kind=kind,
            quantity=quantity,
            balance_after=balance_after,
            unit_cost=unit_cost,
            staff_user_id=actor.user_id,
            witness_user_id=witness_user_id,
            prescription_item_id=prescription_item_id,
            note=None if note is None else note[:255],
        )
    )
    return result.inserted_primary_key[0]
