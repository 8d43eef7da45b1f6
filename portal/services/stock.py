"""Pharmacy stock: receiving, expiry write-offs, quarantine and recall, stocktake
adjustments, the ledger check and the stock alerts.

Every change is one function taking the caller's ``session`` (already inside a
transaction: ``portal.core.db.transaction()`` or ``portal.core.db.run_in_transaction``). A
batch's quantity or status changes only through a conditional UPDATE whose rowcount
says whether the change applied; each quantity change appends a StockMovement (the
stock ledger) and each action an AuditEvent, in the same transaction. Hence, for every
batch, ``quantity_on_hand == SUM(stock_movement.quantity)``, which
:func:`check_stock_ledger` verifies.

Quantities are whole dispensing units (``Medicine.unit``); money is in the smallest
currency unit. "Today" is the hospital-local date (``PORTAL_TIMEZONE``). Usable stock
is an ``active`` batch whose expiry date is after today; dispensing takes it
first-expiry-first-out (see ``portal.services.dispensing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from models import BatchStatus, Medicine, MovementKind, StockBatch, StockMovement, Supplier
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import BatchNotUsable, ConcurrentChange, NotFound, ValidationFailed
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit, stock_terms
from portal.services._ledger import (
    NO_SYNC,
    add_movement,
    fresh_reads,
    read_batch,
    require_count,
    require_text,
)

__all__ = [
    "LedgerProblem", "ReorderAlert", "adjust_stock", "batches_expiring_within",
    "check_stock_ledger", "expired_active_batches", "mark_batch_expired",
    "medicines_below_reorder_level", "quarantine_batch", "receive_stock", "release_batch",
    "usable_stock_by_medicine",
]

#: Batch statuses a delivery of the same lot may be added to. A quarantined lot stays
#: quarantined (the new packs are the same lot); expired and recalled lots are refused.
RECEIVABLE = (BatchStatus.active, BatchStatus.depleted, BatchStatus.quarantined)


# --------------------------------------------------------------------------- receiving


def receive_stock(
    db: Session,
    *,
    medicine_id: int,
    lot_number: str,
    expiry_date: date,
    quantity: int,
    unit_cost: int,
    supplier_id: int | None = None,
    actor: Actor,
    note: str | None = None,
    today: date | None = None,
) -> StockBatch:
    """Receive a delivery of one lot into stock.

    A new lot becomes a new ``active`` batch. A lot already in stock for this medicine
    (same ``lot_number``) is added to with ``UPDATE ... SET quantity_on_hand =
    quantity_on_hand + :n`` (conditional on its expiry date and status); a depleted
    batch that receives stock becomes active again, a quarantined one stays
    quarantined. The batch's unit cost becomes the average cost of what is now on
    hand (weighted by quantity, rounded half up); the ``receipt`` movement records this
    delivery's own cost. Two deliveries of the same new lot at the same moment end in
    one batch (the loser of the unique-lot race adds to the winner's batch).

    Args:
        db (Session): the caller's session, inside a transaction.
        medicine_id (int): the Medicine received; it must be active.
        lot_number (str): lot (batch) number printed on the pack, at most 40 characters;
            stored in upper case, so ``ab12`` and ``AB12`` are one lot on every database
            (MariaDB's collation compares case-insensitively, SQLite's does not).
        expiry_date (date): expiry date printed on the pack; must be after today, and
            equal to the batch's when the lot is already in stock.
        quantity (int): units received, in the medicine's dispensing unit, >= 1.
        unit_cost (int): purchase cost of one unit, smallest currency unit, >= 0.
        supplier_id (int | None): the delivering Supplier (must be active), if known.
        actor (Actor): who receives; stored on the movement and the audit event.
        note (str | None): free text for the movement (delivery note number, ...).
        today (date | None): the hospital-local date; for tests.

    Returns:
        StockBatch: the batch, as stored after the receipt.

    Raises:
        ValidationFailed: quantity < 1, negative cost, blank or too long lot number,
            expiry not after today, inactive medicine or supplier, or the lot is
            already in stock with another expiry date.
        NotFound: unknown medicine or supplier.
        BatchNotUsable: the lot is in stock but expired or recalled.
        ConcurrentChange: the batch kept changing status while receiving.
    """
    today = today or clock.today()
    lot = require_text(lot_number, "lot number", field="lot_number", max_length=40).upper()
    require_count(quantity, "quantity received", field="quantity", minimum=1)
    require_count(unit_cost, "unit cost", field="unit_cost", minimum=0)
    if not isinstance(expiry_date, date) or isinstance(expiry_date, datetime):
        raise ValidationFailed("Enter the expiry date printed on the pack.", field="expiry_date")
    if expiry_date <= today:
        raise ValidationFailed(
            f"Lot {lot} expires on {expiry_date.isoformat()}: only stock that expires after "
            f"today ({today.isoformat()}) can be received.", field="expiry_date",
        )
    note = (note or "").strip() or None
    medicine = db.get(Medicine, medicine_id, populate_existing=True)
    if medicine is None:
        raise NotFound(f"Medicine #{medicine_id} does not exist.", field="medicine_id")
    if not medicine.is_active:
        raise ValidationFailed(f"{medicine} is not an active stock item; reactivate it before receiving stock.",
                               field="medicine_id")
    if supplier_id is not None:
        supplier = db.get(Supplier, supplier_id, populate_existing=True)
        if supplier is None:
            raise NotFound(f"Supplier #{supplier_id} does not exist.", field="supplier_id")
        if not supplier.is_active:
            raise ValidationFailed(f"Supplier {supplier} is inactive; reactivate it before receiving from it.",
                                   field="supplier_id")

    batch_id = _find_lot(db, medicine_id, lot)
    created = False
    if batch_id is None:
        batch_id = _insert_batch(
            db, medicine_id=medicine_id, lot=lot, expiry_date=expiry_date,
            quantity=quantity, unit_cost=unit_cost, supplier_id=supplier_id,
        )
        created = batch_id is not None
        if not created:  # another delivery of the same lot committed first: add to its batch
            batch_id = _find_lot(db, medicine_id, lot)
            if batch_id is None:  # pragma: no cover - the unique constraint said it exists
                raise ConcurrentChange()
    if created:
        receipt = _Receipt(old_on_hand=0, balance=quantity, old_status=None, old_cost=None, new_cost=unit_cost)
    else:
        receipt = _add_to_batch(
            db, batch_id=batch_id, expiry_date=expiry_date, quantity=quantity, unit_cost=unit_cost,
            supplier_id=supplier_id,
        )

    movement_id = add_movement(
        db, batch_id=batch_id, medicine_id=medicine_id, kind=MovementKind.receipt,
        quantity=quantity, balance_after=receipt.balance, unit_cost=unit_cost, actor=actor, note=note,
    )
    changes = {
        "quantity_on_hand": [receipt.old_on_hand, receipt.balance],
        "movement_ids": [movement_id],
        "quantity": quantity,
        "lot_number": lot,
        "expiry_date": expiry_date,
        "unit_cost": unit_cost,
        "supplier_id": supplier_id,
    }
    if receipt.old_status == BatchStatus.depleted:
        changes["status"] = [BatchStatus.depleted, BatchStatus.active]
    if receipt.old_cost is not None and receipt.old_cost != receipt.new_cost:
        changes["batch_unit_cost"] = [receipt.old_cost, receipt.new_cost]
    if note:
        changes["note"] = note
    summary = f"Received {quantity} {medicine.unit} of {medicine}, lot {lot} (exp. {expiry_date.isoformat()})"
    if not created:
        summary += f", added to the batch in stock ({receipt.old_on_hand} -> {receipt.balance})"
    audit.record(
        db, actor=actor, action=AuditAction.receive, entity=Entity.stock_batch, entity_id=batch_id,
        summary=summary, changes=changes,
    )
    return db.get(StockBatch, batch_id, populate_existing=True)


@dataclass(frozen=True)
class _Receipt:
    old_on_hand: int
    balance: int
    old_status: BatchStatus | None
    old_cost: int | None
    new_cost: int


def _find_lot(db: Session, medicine_id: int, lot: str) -> int | None:
    return db.execute(
        select(StockBatch.id).where(StockBatch.medicine_id == medicine_id, StockBatch.lot_number == lot)
    ).scalar_one_or_none()


def _insert_batch(db: Session, *, medicine_id, lot, expiry_date, quantity, unit_cost, supplier_id) -> int | None:
    """Insert a new active batch in a savepoint; None if the lot was inserted concurrently."""
    try:
        with db.begin_nested():
            result = db.execute(
                insert(StockBatch).values(
                    medicine_id=medicine_id, supplier_id=supplier_id, lot_number=lot,
                    expiry_date=expiry_date, quantity_received=quantity, quantity_on_hand=quantity,
                    unit_cost=unit_cost, status=BatchStatus.active,
                )
            )
    except IntegrityError:
        return None
    return result.inserted_primary_key[0]


def _add_to_batch(
    db: Session, *, batch_id: int, expiry_date: date, quantity: int, unit_cost: int, supplier_id: int | None
) -> _Receipt:
    """Add ``quantity`` to an existing batch with a conditional UPDATE on its expiry and status."""
    for batch in fresh_reads(lambda: read_batch(db, batch_id)):
        if batch.expiry_date != expiry_date:
            raise ValidationFailed(
                f"Lot {batch.lot_number} of {batch.medicine} is already in stock with expiry date "
                f"{batch.expiry_date.isoformat()}, not {expiry_date.isoformat()}. Check the pack: "
                "one lot has one expiry date.", field="expiry_date",
            )
        if batch.status not in RECEIVABLE:
            raise BatchNotUsable(
                f"Lot {batch.lot_number} of {batch.medicine} is {batch.status.value}; "
                "stock of this lot cannot be received. Keep the delivery apart and contact the supplier.",
                field="lot_number",
            )
        new_status = BatchStatus.active if batch.status == BatchStatus.depleted else batch.status
        won = db.execute(
            update(StockBatch)
            .where(
                StockBatch.id == batch_id,
                StockBatch.expiry_date == expiry_date,
                StockBatch.status == batch.status,
            )
            .values(
                quantity_on_hand=StockBatch.quantity_on_hand + quantity,
                quantity_received=StockBatch.quantity_received + quantity,
                status=new_status,
                supplier_id=func.coalesce(StockBatch.supplier_id, supplier_id),
            )
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            break
    # The row is now ours until commit (MySQL row lock; SQLite's writer lock): the
    # balance read back and the cost written below cannot interleave with another change.
    balance, old_cost = db.execute(
        select(StockBatch.quantity_on_hand, StockBatch.unit_cost).where(StockBatch.id == batch_id)
    ).one()
    old_on_hand = balance - quantity
    new_cost = _average_cost(old_cost, old_on_hand, unit_cost, quantity)
    if new_cost != old_cost:
        won = db.execute(
            update(StockBatch)
            .where(StockBatch.id == batch_id, StockBatch.unit_cost == old_cost, StockBatch.quantity_on_hand == balance)
            .values(unit_cost=new_cost)
            .execution_options(**NO_SYNC)
        ).rowcount
        if not won:  # pragma: no cover - we hold the row
            raise ConcurrentChange()
    return _Receipt(old_on_hand=old_on_hand, balance=balance, old_status=batch.status, old_cost=old_cost, new_cost=new_cost)


def _average_cost(cost_a: int, qty_a: int, cost_b: int, qty_b: int) -> int:
    """Quantity-weighted average of two unit costs, rounded half up (whole currency units)."""
    total = qty_a + qty_b
    return (2 * (cost_a * qty_a + cost_b * qty_b) + total) // (2 * total)


# ---------------------------------------------------------------- batch status changes


def mark_batch_expired(
    db: Session, *, batch_id: int, actor: Actor, today: date | None = None
) -> StockBatch:
    """Write off what remains of a batch as expired, and set its status to ``expired``.

    Expired medicines must be removed from dispensing stock and destroyed or returned
    (WHO good storage and distribution practice). The remaining quantity is written
    off with one ``expiry_write_off`` movement (negative) and ``quantity_on_hand``
    becomes 0, in one conditional UPDATE on the quantity and status just read; if
    another transaction changed them in between, the batch is re-read and the
    write-off retried. Typically used on batches past or near their expiry date, but
    any active or quarantined batch may be written off.

    Args:
        db (Session): the caller's session, inside a transaction.
        batch_id (int): the StockBatch.
        actor (Actor): who writes off; stored on the movement and the audit event.
        today (date | None): the hospital-local date (for the audit summary); for tests.

    Returns:
        StockBatch: the batch, now ``expired`` with nothing on hand.

    Raises:
        NotFound: unknown batch.
        BatchNotUsable: the batch is already expired, depleted (nothing to write off)
            or recalled (record its return or disposal with :func:`adjust_stock`).
        ConcurrentChange: the batch kept changing while writing off.
    """
    today = today or clock.today()
    for batch in fresh_reads(lambda: read_batch(db, batch_id)):
        if batch.status == BatchStatus.expired:
            raise BatchNotUsable(f"The {batch.label} is already expired and written off.")
        if batch.status == BatchStatus.depleted:
            raise BatchNotUsable(f"The {batch.label} is depleted: there is nothing left to write off.")
        if batch.status == BatchStatus.recalled:
            raise BatchNotUsable(
                f"The {batch.label} is recalled: record its return or disposal as a stock adjustment."
            )
        won = db.execute(
            update(StockBatch)
            .where(
                StockBatch.id == batch_id,
                StockBatch.status == batch.status,
                StockBatch.quantity_on_hand == batch.quantity_on_hand,
            )
            .values(status=BatchStatus.expired, quantity_on_hand=0)
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            break
    when = "expired" if batch.expiry_date <= today else "expires"
    note = f"Expiry write-off ({when} {batch.expiry_date.isoformat()})"
    movement_ids = []
    if batch.quantity_on_hand:
        movement_ids.append(add_movement(
            db, batch_id=batch_id, medicine_id=batch.medicine_id, kind=MovementKind.expiry_write_off,
            quantity=-batch.quantity_on_hand, balance_after=0, unit_cost=batch.unit_cost, actor=actor, note=note,
        ))
    audit.record(
        db, actor=actor, action=AuditAction.expire, entity=Entity.stock_batch, entity_id=batch_id,
        summary=f"Wrote off {batch.quantity_on_hand} units of the {batch.label} ({when} {batch.expiry_date.isoformat()})",
        changes={
            "status": [batch.status, BatchStatus.expired],
            "quantity_on_hand": [batch.quantity_on_hand, 0],
            "value_written_off": batch.quantity_on_hand * batch.unit_cost,
            "movement_ids": movement_ids,
        },
    )
    return db.get(StockBatch, batch_id, populate_existing=True)


def quarantine_batch(
    db: Session, *, batch_id: int, actor: Actor, reason: str, recall: bool = False
) -> StockBatch:
    """Take a batch out of dispensing without writing it off: quarantine or recall.

    A quarantined batch (suspected quality problem, damaged packaging, cold chain
    break) is held until :func:`release_batch` or a write-off; a recalled batch
    (manufacturer or regulator recall) does not come back. Neither is used by
    first-expiry-first-out dispensing. The status change is a conditional UPDATE on the
    status just read.

    Args:
        db (Session): the caller's session, inside a transaction.
        batch_id (int): the StockBatch.
        actor (Actor): who acts; stored on the audit event.
        reason (str): why (required, at most 255 characters); stored on the audit event.
        recall (bool): True to mark the batch ``recalled`` (from active or quarantined)
            instead of ``quarantined`` (from active).

    Returns:
        StockBatch: the batch, now quarantined or recalled.

    Raises:
        ValidationFailed: blank reason.
        NotFound: unknown batch.
        BatchNotUsable: the batch is already in that status, expired or depleted.
        ConcurrentChange: the batch kept changing while updating.
    """
    reason = require_text(reason, "reason", field="reason")
    target = BatchStatus.recalled if recall else BatchStatus.quarantined
    allowed = (BatchStatus.active, BatchStatus.quarantined) if recall else (BatchStatus.active,)
    verb = "recalled" if recall else "quarantined"
    for batch in fresh_reads(lambda: read_batch(db, batch_id)):
        if batch.status == target:
            raise BatchNotUsable(f"The {batch.label} is already {verb}.")
        if batch.status not in allowed:
            raise BatchNotUsable(
                f"The {batch.label} is {batch.status.value}; only an active "
                + ("or quarantined " if recall else "")
                + f"batch can be {verb}."
            )
        won = _set_status(db, batch_id, expected=batch.status, new=target)
        if won:
            break
    audit.record(
        db, actor=actor, action=AuditAction.recall if recall else AuditAction.quarantine, entity=Entity.stock_batch,
        entity_id=batch_id, summary=f"{verb.capitalize()} the {batch.label}: {reason}",
        changes={"status": [batch.status, target], "reason": reason},
    )
    return db.get(StockBatch, batch_id, populate_existing=True)


def release_batch(
    db: Session, *, batch_id: int, actor: Actor, reason: str, today: date | None = None
) -> StockBatch:
    """Release a quarantined batch back to dispensing stock.

    The batch becomes ``active`` again (``depleted`` if nothing is on hand), with a
    conditional UPDATE on ``status = 'quarantined' AND expiry_date > today``. A batch
    past its expiry date is never released: write it off with :func:`mark_batch_expired`.

    Args:
        db (Session): the caller's session, inside a transaction.
        batch_id (int): the StockBatch.
        actor (Actor): who releases; stored on the audit event.
        reason (str): why it is fit for use again (required, at most 255 characters).
        today (date | None): the hospital-local date; for tests.

    Returns:
        StockBatch: the batch, now active (or depleted).

    Raises:
        ValidationFailed: blank reason.
        NotFound: unknown batch.
        BatchNotUsable: the batch is not quarantined (a recalled batch is never
            released), or its expiry date is today or earlier.
        ConcurrentChange: the batch kept changing while updating.
    """
    reason = require_text(reason, "reason", field="reason")
    today = today or clock.today()
    for batch in fresh_reads(lambda: read_batch(db, batch_id)):
        if batch.status != BatchStatus.quarantined:
            raise BatchNotUsable(
                f"The {batch.label} is {batch.status.value}; only a quarantined batch can be released."
            )
        if batch.expiry_date <= today:
            raise BatchNotUsable(
                f"The {batch.label} expired on {batch.expiry_date.isoformat()}; it cannot be released. "
                "Write it off instead."
            )
        new = BatchStatus.active if batch.quantity_on_hand > 0 else BatchStatus.depleted
        won = db.execute(
            update(StockBatch)
            .where(
                StockBatch.id == batch_id,
                StockBatch.status == BatchStatus.quarantined,
                StockBatch.quantity_on_hand == batch.quantity_on_hand,
                StockBatch.expiry_date > today,
            )
            .values(status=new)
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            break
    audit.record(
        db, actor=actor, action=AuditAction.release, entity=Entity.stock_batch, entity_id=batch_id,
        summary=f"Released the {batch.label} from quarantine: {reason}",
        changes={"status": [BatchStatus.quarantined, new], "reason": reason},
    )
    return db.get(StockBatch, batch_id, populate_existing=True)


def _set_status(db: Session, batch_id: int, *, expected: BatchStatus, new: BatchStatus) -> bool:
    return bool(
        db.execute(
            update(StockBatch)
            .where(StockBatch.id == batch_id, StockBatch.status == expected)
            .values(status=new)
            .execution_options(**NO_SYNC)
        ).rowcount
    )


# ------------------------------------------------------------------------- stocktake


def adjust_stock(
    db: Session, *, batch_id: int, counted_quantity: int, reason: str, actor: Actor
) -> StockMovement | None:
    """Correct a batch's quantity to what a stocktake counted.

    Records an ``adjustment`` movement of ``counted - on hand`` and sets
    ``quantity_on_hand`` to the count, with a conditional UPDATE on the quantity just
    read (re-read and retried if it changed meanwhile, e.g. a dispense). An active
    batch counted at zero becomes ``depleted``; a depleted batch counted above zero
    becomes ``active``; other statuses are kept. When the count matches, no movement
    is written but the count is still audited (evidence of the stocktake).

    Args:
        db (Session): the caller's session, inside a transaction.
        batch_id (int): the StockBatch counted.
        counted_quantity (int): units physically counted, >= 0.
        reason (str): why they differ / what was counted (required, at most 255 chars);
            stored as the movement's note and on the audit event.
        actor (Actor): who counted; stored on the movement and the audit event.

    Returns:
        StockMovement | None: the adjustment movement, or None if the count matched.

    Raises:
        ValidationFailed: count not a whole number >= 0, or blank reason.
        NotFound: unknown batch.
        ConcurrentChange: the batch kept changing while adjusting.
    """
    require_count(counted_quantity, "counted quantity", field="counted_quantity", minimum=0)
    reason = require_text(reason, "reason", field="reason")
    for batch in fresh_reads(lambda: read_batch(db, batch_id)):
        difference = counted_quantity - batch.quantity_on_hand
        if difference == 0:
            audit.record(
                db, actor=actor, action=AuditAction.stocktake, entity=Entity.stock_batch, entity_id=batch_id,
                summary=f"Counted {counted_quantity} units of the {batch.label}: matches stock ({reason})",
                changes={"counted_quantity": counted_quantity, "reason": reason},
            )
            return None
        new_status = batch.status
        if batch.status == BatchStatus.active and counted_quantity == 0:
            new_status = BatchStatus.depleted
        elif batch.status == BatchStatus.depleted and counted_quantity > 0:
            new_status = BatchStatus.active
        won = db.execute(
            update(StockBatch)
            .where(
                StockBatch.id == batch_id,
                StockBatch.quantity_on_hand == batch.quantity_on_hand,
                StockBatch.status == batch.status,
            )
            .values(quantity_on_hand=counted_quantity, status=new_status)
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            break
    movement_id = add_movement(
        db, batch_id=batch_id, medicine_id=batch.medicine_id, kind=MovementKind.adjustment,
        quantity=difference, balance_after=counted_quantity, unit_cost=batch.unit_cost, actor=actor,
        note=reason,
    )
    changes = {
        "quantity_on_hand": [batch.quantity_on_hand, counted_quantity],
        "difference": difference,
        "reason": reason,
        "movement_ids": [movement_id],
    }
    if new_status != batch.status:
        changes["status"] = [batch.status, new_status]
    audit.record(
        db, actor=actor, action=AuditAction.adjust, entity=Entity.stock_batch, entity_id=batch_id,
        summary=f"Stocktake of the {batch.label}: {batch.quantity_on_hand} -> {counted_quantity} "
        f"({difference:+d}): {reason}",
        changes=changes,
    )
    return db.get(StockMovement, movement_id, populate_existing=True)


# ------------------------------------------------------------------------ ledger check


@dataclass(frozen=True)
class LedgerProblem:
    """A batch whose quantity disagrees with its stock ledger.

    Attributes:
        batch_id (int), medicine_id (int), lot_number (str): the batch.
        quantity_on_hand (int): the batch's stored quantity (units).
        ledger_total (int): SUM of its movements' quantities (units).
        lowest_balance_after (int | None): smallest ``balance_after`` of its movements.
        last_balance_after (int | None): ``balance_after`` of its newest movement.
        foreign_movements (int): movements whose medicine is not the batch's medicine.
    """

    batch_id: int
    medicine_id: int
    lot_number: str
    quantity_on_hand: int
    ledger_total: int
    lowest_balance_after: int | None
    last_balance_after: int | None
    foreign_movements: int

    @property
    def problems(self) -> list[str]:
        """The broken rules, as readable sentences."""
        out = []
        if self.quantity_on_hand != self.ledger_total:
            out.append(f"on hand {self.quantity_on_hand} but the movements add up to {self.ledger_total}")
        if self.quantity_on_hand < 0:
            out.append(f"negative quantity on hand ({self.quantity_on_hand})")
        if self.lowest_balance_after is not None and self.lowest_balance_after < 0:
            out.append(f"a movement left a negative balance ({self.lowest_balance_after})")
        if self.last_balance_after is not None and self.last_balance_after != self.quantity_on_hand:
            out.append(f"the newest movement's balance is {self.last_balance_after}, not {self.quantity_on_hand}")
        if self.foreign_movements:
            out.append(f"{self.foreign_movements} movement(s) name another medicine")
        return out

    def __str__(self) -> str:
        return f"Batch #{self.batch_id} (lot {self.lot_number}): " + "; ".join(self.problems)


def check_stock_ledger(db: Session) -> list[LedgerProblem]:
    """Check every batch against the stock ledger, in one aggregate query.

    For every StockBatch: ``quantity_on_hand`` must equal the SUM of its movements'
    quantities (a batch without movements must hold 0) and be >= 0; every movement's
    ``balance_after`` must be >= 0; the newest movement's ``balance_after`` must equal
    ``quantity_on_hand``; and its movements must be of the batch's medicine. This is the
    perpetual-inventory rule: stock on hand is the sum of what came in and went out.

    Args:
        db (Session): any session (read only).

    Returns:
        list[LedgerProblem]: the batches that break a rule, by batch id; empty when the
        ledger is consistent.
    """
    m = StockMovement
    per_batch = (
        select(
            m.batch_id.label("batch_id"),
            func.sum(m.quantity).label("total"),
            func.min(m.balance_after).label("lowest"),
            func.max(m.id).label("last_id"),
            func.sum(case((m.medicine_id != StockBatch.medicine_id, 1), else_=0)).label("foreign"),
        )
        .join(StockBatch, StockBatch.id == m.batch_id)
        .group_by(m.batch_id)
        .subquery()
    )
    last = aliased(StockMovement)
    total = func.coalesce(per_batch.c.total, 0)
    foreign = func.coalesce(per_batch.c.foreign, 0)
    rows = db.execute(
        select(
            StockBatch.id, StockBatch.medicine_id, StockBatch.lot_number, StockBatch.quantity_on_hand,
            total.label("total"), per_batch.c.lowest, last.balance_after.label("last_balance"),
            foreign.label("foreign"),
        )
        .outerjoin(per_batch, per_batch.c.batch_id == StockBatch.id)
        .outerjoin(last, last.id == per_batch.c.last_id)
        .where(
            or_(
                StockBatch.quantity_on_hand != total,
                StockBatch.quantity_on_hand < 0,
                per_batch.c.lowest < 0,
                last.balance_after != StockBatch.quantity_on_hand,
                foreign > 0,
            )
        )
        .order_by(StockBatch.id)
    ).all()
    return [
        LedgerProblem(
            batch_id=r.id, medicine_id=r.medicine_id, lot_number=r.lot_number,
            quantity_on_hand=r.quantity_on_hand, ledger_total=int(r.total),
            lowest_balance_after=r.lowest, last_balance_after=r.last_balance, foreign_movements=int(r.foreign),
        )
        for r in rows
    ]


# ----------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class ReorderAlert:
    """A medicine whose usable stock is below its reorder level.

    Attributes:
        medicine (Medicine): the medicine (detached; its columns are loaded).
        usable_quantity (int): units in active, unexpired batches.
    """

    medicine: Medicine
    usable_quantity: int

    @property
    def reorder_level(self) -> int:
        """The medicine's reorder level, units."""
        return self.medicine.reorder_level

    @property
    def shortfall(self) -> int:
        """Units needed to reach the reorder level again."""
        return self.medicine.reorder_level - self.usable_quantity


def _usable_per_medicine(today: date):
    return (
        select(
            StockBatch.medicine_id.label("medicine_id"),
            func.sum(StockBatch.quantity_on_hand).label("quantity"),
            func.min(StockBatch.expiry_date).label("next_expiry"),
        )
        .where(*stock_terms.usable_batch(today), StockBatch.quantity_on_hand > 0)
        .group_by(StockBatch.medicine_id)
    )


def medicines_below_reorder_level(db: Session, *, today: date | None = None) -> list[ReorderAlert]:
    """Active medicines whose usable stock is strictly below their reorder level.

    Usable stock counts only active batches whose expiry date is after today (what
    dispensing can use); a medicine with none at all is included when its
    ``reorder_level`` is above 0. At the level exactly is not yet an alert. One
    aggregate query (usable stock per medicine, outer-joined to medicine).

    Args:
        db (Session): any session (read only).
        today (date | None): the hospital-local date; for tests.

    Returns:
        list[ReorderAlert]: largest shortfall first, then by name.
    """
    today = today or clock.today()
    usable = _usable_per_medicine(today).subquery()
    quantity = func.coalesce(usable.c.quantity, 0)
    rows = db.execute(
        select(Medicine, quantity.label("usable"))
        .outerjoin(usable, usable.c.medicine_id == Medicine.id)
        .where(stock_terms.medicine_below_reorder_level(today))
        .order_by((Medicine.reorder_level - quantity).desc(), Medicine.name, Medicine.id)
    ).all()
    return [ReorderAlert(medicine=row[0], usable_quantity=int(row[1])) for row in rows]


def batches_expiring_within(db: Session, *, days: int | None = None, today: date | None = None) -> list[StockBatch]:
    """Batches expiring within the window (``stock_terms.batch_expiring_within``): active,
    holding stock, expiry date in (today, today + days].

    For the near-expiry list (use first, move to another ward, or ask the supplier to
    take back), as first-expiry-first-out practice recommends.

    Args:
        db (Session): any session (read only).
        days (int | None): window length in days, >= 0; the ``EXPIRY_WINDOW_DAYS``
            setting when None.
        today (date | None): the hospital-local date; for tests.

    Returns:
        list[StockBatch]: soonest expiry first, with ``medicine`` loaded.

    Raises:
        ValidationFailed: ``days`` is not a whole number >= 0.
    """
    if days is not None:
        require_count(days, "number of days", field="days", minimum=0)
    today = today or clock.today()
    return list(
        db.scalars(
            select(StockBatch)
            .options(selectinload(StockBatch.medicine))
            .where(stock_terms.batch_expiring_within(today, days))
            .order_by(StockBatch.expiry_date, StockBatch.id)
        )
    )


def expired_active_batches(db: Session, *, today: date | None = None) -> list[StockBatch]:
    """Batches still ``active``, holding stock, although their expiry date is today or earlier
    (``stock_terms.batch_expired_but_active``).

    Dispensing already skips them; they should be written off with
    :func:`mark_batch_expired` (expired stock is removed from saleable stock).

    Args:
        db (Session): any session (read only).
        today (date | None): the hospital-local date; for tests.

    Returns:
        list[StockBatch]: oldest expiry first, with ``medicine`` loaded.
    """
    today = today or clock.today()
    return list(
        db.scalars(
            select(StockBatch)
            .options(selectinload(StockBatch.medicine))
            .where(stock_terms.batch_expired_but_active(today))
            .order_by(StockBatch.expiry_date, StockBatch.id)
        )
    )


def usable_stock_by_medicine(
    db: Session, medicine_ids: list[int] | None = None, today: date | None = None
) -> dict[int, tuple[int, date | None]]:
    """Usable quantity and next expiry date per medicine (for the medicine list).

    Usable means in an active batch whose expiry date is after today, i.e. what
    first-expiry-first-out dispensing can take; the next expiry is the earliest
    expiry date among those batches (the one dispensed next). One aggregate query.

    Args:
        db (Session): any session (read only).
        medicine_ids (list[int] | None): the medicines wanted; every requested id is in
            the result, ``(0, None)`` when it has no usable stock. None: every medicine
            that has usable stock (others are absent).
        today (date | None): the hospital-local date; for tests.

    Returns:
        dict[int, tuple[int, date | None]]: medicine id -> (units, next expiry date).
    """
    today = today or clock.today()
    if medicine_ids is not None:
        medicine_ids = list(medicine_ids)
        if not medicine_ids:
            return {}
    stmt = _usable_per_medicine(today)
    if medicine_ids is not None:
        stmt = stmt.where(StockBatch.medicine_id.in_(medicine_ids))
    found = {row.medicine_id: (int(row.quantity), row.next_expiry) for row in db.execute(stmt)}
    if medicine_ids is None:
        return found
    return {mid: found.get(mid, (0, None)) for mid in medicine_ids}
