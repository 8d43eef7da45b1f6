"""Dispensing prescriptions from stock, first-expiry-first-out, and cancelling them.

:func:`dispense` takes what a prescription still owes from usable batches (status
``active`` and expiry date after today), earliest expiry first (FEFO, the
first-expiry-first-out rule of WHO good storage and distribution practice and of
hospital pharmacy practice). Each take is a conditional UPDATE that cannot make stock
negative; the prescription's status change is a conditional UPDATE on the status it
was read with, so two dispenses of one prescription cannot both succeed. Everything
runs in the caller's transaction: when :func:`dispense` raises, nothing it did is
committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from models import (
    Medicine,
    MovementKind,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    StaffUser,
    StockBatch,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import (
    ConcurrentChange,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    WitnessRequired,
)
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit
from portal.services._ledger import (
    NO_SYNC,
    Take,
    add_movement,
    fresh_reads,
    require_text,
    take_from_batch,
)
from portal.services.stock_terms import usable_batch

__all__ = ["BatchTake", "DispenseResult", "DispensedItem", "cancel_prescription", "dispense"]

#: Prescription statuses that may still be dispensed.
DISPENSABLE = (PrescriptionStatus.issued, PrescriptionStatus.partially_dispensed)


@dataclass(frozen=True)
class BatchTake:
    """Units of one prescription line taken from one batch (one ``dispense`` movement).

    Attributes:
        batch_id (int), lot_number (str), expiry_date (date): the batch.
        quantity (int): units taken (positive; the movement records it negative).
        balance_after (int): the batch's quantity on hand right after the take.
        unit_cost (int): the batch's unit cost, smallest currency unit.
        movement_id (int): the StockMovement written.
    """

    batch_id: int
    lot_number: str
    expiry_date: date
    quantity: int
    balance_after: int
    unit_cost: int
    movement_id: int


@dataclass(frozen=True)
class DispensedItem:
    """What one prescription line received in this dispense.

    Attributes:
        prescription_item_id (int), medicine_id (int): the line and its medicine.
        medicine (str): readable medicine name, e.g. ``Amoxicillin 500 mg Capsule``.
        unit (str): dispensing unit of the quantities.
        quantity (int): units prescribed.
        dispensed_now (int): units handed out by this call.
        quantity_dispensed (int): units handed out in total, this call included.
        takes (tuple[BatchTake, ...]): the batches taken from, in FEFO order.
    """

    prescription_item_id: int
    medicine_id: int
    medicine: str
    unit: str
    quantity: int
    dispensed_now: int
    quantity_dispensed: int
    takes: tuple[BatchTake, ...] = field(default_factory=tuple)

    @property
    def outstanding(self) -> int:
        """Units still owed on this line after this call."""
        return self.quantity - self.quantity_dispensed


@dataclass(frozen=True)
class DispenseResult:
    """Outcome of :func:`dispense`.

    Attributes:
        prescription_id (int), prescription_number (str): the prescription.
        previous_status (PrescriptionStatus): its status before this call.
        status (PrescriptionStatus): its new status (``dispensed`` or ``partially_dispensed``).
        items (tuple[DispensedItem, ...]): every line that was still owed before this call.
    """

    prescription_id: int
    prescription_number: str
    previous_status: PrescriptionStatus
    status: PrescriptionStatus
    items: tuple[DispensedItem, ...]

    @property
    def complete(self) -> bool:
        """True when the whole prescription has now been dispensed."""
        return self.status == PrescriptionStatus.dispensed

    @property
    def units_dispensed(self) -> int:
        """Units handed out by this call, all lines together."""
        return sum(item.dispensed_now for item in self.items)


def dispense(
    db: Session,
    *,
    prescription_id: int,
    actor: Actor,
    partial: bool = False,
    witness_id: int | None = None,
    today: date | None = None,
) -> DispenseResult:
    """Dispense what a prescription still owes, from usable stock, first expiry first out.

    For each line still owed (``quantity - quantity_dispensed``), units are taken from
    the medicine's usable batches (status ``active``, expiry date after today) in order
    of expiry date, then batch id, across several batches when needed. Each take is
    ``UPDATE stock_batch SET quantity_on_hand = quantity_on_hand - :n WHERE id = :id AND
    quantity_on_hand >= :n AND status = 'active'``; when another transaction took the
    stock first, the batch is re-read and fewer units or the next batch are taken. Each
    take writes one ``dispense`` movement (negative quantity, the balance read back
    after the UPDATE, the line, the actor, the witness, the batch's unit cost); a batch
    left empty becomes ``depleted``. The line's ``quantity_dispensed`` and the
    prescription's status are then updated with conditional UPDATEs. The prescription
    row is claimed first (a conditional UPDATE on the status read), so a concurrent
    dispense of the same prescription waits and then sees the new status.

    Controlled medicines (``Medicine.is_controlled``) are dispensed only by an
    identified staff member, in the presence of a second, active staff member as witness
    (two-person rule for controlled drugs); the witness is recorded on the movements.

    Args:
        db (Session): the caller's session, inside a transaction. On an error,
            the caller must roll it back (``portal.core.db.transaction`` does): stock may
            already have been taken in it.
        prescription_id (int): the Prescription.
        actor (Actor): who dispenses; ``actor.user_id`` is stored on the movements.
        partial (bool): False (default): all or nothing. True: dispense what usable
            stock allows and leave the prescription ``partially_dispensed``; a later
            call dispenses the rest.
        witness_id (int | None): StaffUser id of the witness; required when a line
            still owed is a controlled medicine, recorded on every movement when given.
        today (date | None): the hospital-local date; for tests.

    Returns:
        DispenseResult: per line, the units taken from which batch, and the
        prescription's new status (``dispensed``, with ``dispensed_at`` set, when every
        line is complete; else ``partially_dispensed``).

    Raises:
        NotFound: unknown prescription.
        InvalidTransition: the prescription is not ``issued`` or ``partially_dispensed``.
        ValidationFailed: the prescription owes nothing (no lines left to dispense).
        WitnessRequired: a controlled medicine is owed and the witness is missing, is
            the actor, or is not an active staff user (checked before any stock moves).
        PermissionDenied: a controlled medicine is owed and the actor is not a staff user.
        InsufficientStock: usable stock does not cover every line (partial=False), or
            covers none of them (partial=True); names each short medicine and the
            units it lacks.
        ConcurrentChange: the prescription or its lines changed under it.
    """
    today = today or clock.today()
    number, previous = _claim_for_dispensing(db, prescription_id)
    lines = db.execute(
        select(
            PrescriptionItem.id, PrescriptionItem.medicine_id, PrescriptionItem.quantity,
            PrescriptionItem.quantity_dispensed, Medicine.name, Medicine.strength, Medicine.form,
            Medicine.unit, Medicine.is_controlled,
        )
        .join(Medicine, Medicine.id == PrescriptionItem.medicine_id)
        .where(PrescriptionItem.prescription_id == prescription_id)
        # One global order of row locks (medicine, then expiry, then batch) keeps two
        # dispenses of different prescriptions from deadlocking on each other's batches.
        .order_by(PrescriptionItem.medicine_id, PrescriptionItem.id)
    ).all()
    owed = [line for line in lines if line.quantity > line.quantity_dispensed]
    if not owed:
        raise ValidationFailed(f"Prescription {number} has nothing left to dispense.")
    controlled = sorted({_label(line) for line in owed if line.is_controlled})
    _check_witness(db, actor=actor, witness_id=witness_id, controlled=controlled)

    taken: list[tuple[Any, list[tuple[Take, str, date]]]] = []  # (line row, its takes)
    shortages: dict[int, list] = {}  # medicine id -> [name, units missing]
    for line in owed:
        need = line.quantity - line.quantity_dispensed
        takes = _take_fefo(db, medicine_id=line.medicine_id, need=need, today=today)
        got = sum(t.quantity for t, _, _ in takes)
        if got < need:
            shortage = shortages.setdefault(line.medicine_id, [_label(line), 0])
            shortage[1] += need - got
        taken.append((line, takes))
    units = sum(t.quantity for _, takes in taken for t, _, _ in takes)
    if shortages and (not partial or units == 0):
        # Raised before anything is committed: the caller's rollback undoes the takes.
        raise InsufficientStock([(name, missing) for name, missing in shortages.values()])

    items: list[DispensedItem] = []
    for line, takes in taken:
        got = sum(t.quantity for t, _, _ in takes)
        if got:
            won = db.execute(
                update(PrescriptionItem)
                .where(
                    PrescriptionItem.id == line.id,
                    PrescriptionItem.quantity_dispensed == line.quantity_dispensed,
                    PrescriptionItem.quantity >= line.quantity_dispensed + got,
                )
                .values(quantity_dispensed=PrescriptionItem.quantity_dispensed + got)
                .execution_options(**NO_SYNC)
            ).rowcount
            if not won:
                raise ConcurrentChange(
                    f"A line of prescription {number} was changed while dispensing; nothing was "
                    "dispensed. Reload the prescription and try again."
                )
        batch_takes = []
        for take, lot, expiry in takes:
            movement_id = add_movement(
                db, batch_id=take.batch_id, medicine_id=line.medicine_id, kind=MovementKind.dispense,
                quantity=-take.quantity, balance_after=take.balance_after, unit_cost=take.unit_cost,
                actor=actor, note=number, prescription_item_id=line.id, witness_user_id=witness_id,
            )
            batch_takes.append(BatchTake(
                batch_id=take.batch_id, lot_number=lot, expiry_date=expiry, quantity=take.quantity,
                balance_after=take.balance_after, unit_cost=take.unit_cost, movement_id=movement_id,
            ))
        items.append(DispensedItem(
            prescription_item_id=line.id, medicine_id=line.medicine_id, medicine=_label(line),
            unit=line.unit, quantity=line.quantity, dispensed_now=got,
            quantity_dispensed=line.quantity_dispensed + got, takes=tuple(batch_takes),
        ))

    complete = all(i.outstanding == 0 for i in items)  # lines not owed were already complete
    status = PrescriptionStatus.dispensed if complete else PrescriptionStatus.partially_dispensed
    values: dict = {"status": status}
    if complete:
        values["dispensed_at"] = clock.now()
    won = db.execute(
        update(Prescription)
        .where(Prescription.id == prescription_id, Prescription.status == previous)
        .values(**values)
        .execution_options(**NO_SYNC)
    ).rowcount
    if not won:  # pragma: no cover - the row was claimed above
        raise ConcurrentChange()

    parts = []
    for item in items:
        if item.dispensed_now:
            lots = ", ".join(f"lot {t.lot_number} x{t.quantity}" for t in item.takes)
            parts.append(f"{item.dispensed_now} {item.unit} {item.medicine} ({lots})")
    audit.record(
        db, actor=actor, action=AuditAction.dispense, entity=Entity.prescription, entity_id=prescription_id,
        summary=f"Dispensed {number}: " + "; ".join(parts) + f" [{previous.value} -> {status.value}]",
        changes={
            "status": [previous, status],
            "dispensed": [
                f"line {i.prescription_item_id}: {i.dispensed_now} of {i.quantity} {i.unit} {i.medicine}; "
                + ", ".join(f"batch {t.batch_id} lot {t.lot_number} -{t.quantity} -> {t.balance_after}" for t in i.takes)
                for i in items
            ],
            "outstanding": [f"line {i.prescription_item_id}: {i.outstanding}" for i in items if i.outstanding],
            "witness_user_id": witness_id,
            "partial": partial,
            "movement_ids": [t.movement_id for i in items for t in i.takes],
        },
    )
    return DispenseResult(
        prescription_id=prescription_id, prescription_number=number, previous_status=previous,
        status=status, items=tuple(items),
    )


def _label(line) -> str:
    return " ".join(p for p in (line.name, line.strength, line.form) if p)


def _claim_for_dispensing(db: Session, prescription_id: int) -> tuple[str, PrescriptionStatus]:
    """Read the prescription's status and claim its row with a conditional no-op UPDATE.

    ``UPDATE prescription SET status = :s WHERE id = :id AND status = :s`` matches only
    while the status is still the one read, and (on MySQL) locks the row until the
    transaction ends; a concurrent dispense of the same prescription waits here, then
    finds the status changed and re-reads it.
    """
    def read():
        return db.execute(
            select(Prescription.number, Prescription.status).where(Prescription.id == prescription_id)
        ).one_or_none()

    for row in fresh_reads(read):
        if row is None:
            raise NotFound(f"Prescription #{prescription_id} does not exist.")
        if row.status not in DISPENSABLE:
            why = {
                PrescriptionStatus.dispensed: "everything on it has already been dispensed",
                PrescriptionStatus.cancelled: "it was cancelled",
            }.get(row.status, "")
            raise InvalidTransition(f"Prescription {row.number}", row.status.value, "dispensed", why)
        won = db.execute(
            update(Prescription)
            .where(Prescription.id == prescription_id, Prescription.status == row.status)
            .values(status=row.status)
            .execution_options(**NO_SYNC)
        ).rowcount
        if won:
            return row.number, row.status
    raise AssertionError("unreachable: fresh_reads raises when it gives up")


def _check_witness(db: Session, *, actor: Actor, witness_id: int | None, controlled: list[str]) -> None:
    """Enforce the two-person rule for controlled medicines; validate any witness given."""
    if controlled and actor.user_id is None:
        raise PermissionDenied("Controlled medicines can only be dispensed by a signed-in staff member.")
    if witness_id is None:
        if controlled:
            names = ", ".join(controlled)
            raise WitnessRequired(
                f"{names} {'is a controlled medicine' if len(controlled) == 1 else 'are controlled medicines'}: "
                "a second staff member must witness the dispensing. Choose the witness."
            )
        return
    if witness_id == actor.user_id:
        raise WitnessRequired("The witness must be a different staff member from the one dispensing.")
    witness = db.execute(
        select(StaffUser.is_active).where(StaffUser.id == witness_id)
    ).scalar_one_or_none()
    if not witness:
        raise WitnessRequired("The witness must be an active staff member.")


def _take_fefo(db: Session, *, medicine_id: int, need: int, today: date) -> list[tuple[Take, str, date]]:
    """Take up to ``need`` units of a medicine from its usable batches, earliest expiry first."""
    batches = db.execute(
        select(StockBatch.id, StockBatch.lot_number, StockBatch.expiry_date, StockBatch.quantity_on_hand)
        .where(StockBatch.medicine_id == medicine_id, *usable_batch(today), StockBatch.quantity_on_hand > 0)
        .order_by(StockBatch.expiry_date, StockBatch.id)
    ).all()
    takes = []
    for batch in batches:
        if need == 0:
            break
        take = take_from_batch(db, batch_id=batch.id, wanted=need, on_hand=batch.quantity_on_hand, today=today)
        if take is not None:
            takes.append((take, batch.lot_number, batch.expiry_date))
            need -= take.quantity
    return takes


def cancel_prescription(db: Session, *, prescription_id: int, actor: Actor, reason: str) -> Prescription:
    """Cancel a prescription from which nothing has been dispensed.

    Only an ``issued`` prescription none of whose lines has any units dispensed can be
    cancelled (stock handed out cannot be un-prescribed; a partly dispensed
    prescription is finished or left as it is). Conditional UPDATE on
    ``status = 'issued'`` and no dispensed line.

    Args:
        db (Session): the caller's session, inside a transaction.
        prescription_id (int): the Prescription.
        actor (Actor): who cancels; stored on the audit event.
        reason (str): why (required, at most 255 characters); stored on the audit event.

    Returns:
        Prescription: the prescription, now ``cancelled``.

    Raises:
        ValidationFailed: blank reason.
        NotFound: unknown prescription.
        InvalidTransition: it is not ``issued`` or something was dispensed from it.
    """
    reason = require_text(reason, "reason for cancelling", field="reason")
    number = db.execute(
        select(Prescription.number).where(Prescription.id == prescription_id)
    ).scalar_one_or_none()
    if number is None:
        raise NotFound(f"Prescription #{prescription_id} does not exist.")
    something_dispensed = exists().where(
        PrescriptionItem.prescription_id == prescription_id, PrescriptionItem.quantity_dispensed > 0
    )
    won = db.execute(
        update(Prescription)
        .where(
            Prescription.id == prescription_id,
            Prescription.status == PrescriptionStatus.issued,
            ~something_dispensed,
        )
        .values(status=PrescriptionStatus.cancelled)
        .execution_options(**NO_SYNC)
    ).rowcount
    if not won:
        status = db.execute(
            select(Prescription.status).where(Prescription.id == prescription_id)
        ).scalar_one()
        why = "it was already cancelled" if status == PrescriptionStatus.cancelled else "medicines have already been dispensed from it"
        raise InvalidTransition(f"Prescription {number}", status.value, "cancelled", why)
    audit.record(
        db, actor=actor, action=AuditAction.cancel, entity=Entity.prescription, entity_id=prescription_id,
        summary=f"Cancelled prescription {number}: {reason}",
        changes={"status": [PrescriptionStatus.issued, PrescriptionStatus.cancelled], "reason": reason},
    )
    return db.get(Prescription, prescription_id, populate_existing=True)
