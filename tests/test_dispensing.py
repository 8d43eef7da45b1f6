"""Dispensing (FEFO, all-or-nothing, partial, controlled medicines) and cancelling
prescriptions. Runs on SQLite and MariaDB; races are in test_pharmacy_concurrency.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import (
    AuditEvent,
    BatchStatus,
    MovementKind,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    Role,
    StockBatch,
    StockMovement,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import (
    InsufficientStock,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    WitnessRequired,
)
from portal.services import dispensing, stock
from tests.factories import (
    actor_for,
    assert_ledger_consistent,
    make_batch,
    make_medicine,
    make_prescription,
    make_staff,
)

TODAY = clock.today()


@pytest.fixture(autouse=True)
def _ledger_stays_consistent(engine):
    """After every test here, every batch still equals the sum of its movements."""
    yield
    assert_ledger_consistent(engine)


@pytest.fixture
def pharmacist(engine):
    return actor_for(make_staff(engine, role=Role.pharmacist))


def _dispense(engine, rx, actor, **kw):
    return run_in_transaction(dispensing.dispense, engine=engine, prescription_id=rx.id, actor=actor, **kw)


def _on_hand(engine, *batches) -> list[int]:
    with transaction(engine, write=False) as db:
        return [db.get(StockBatch, b.id).quantity_on_hand for b in batches]


def _batch(engine, batch) -> StockBatch:
    with transaction(engine, write=False) as db:
        return db.get(StockBatch, batch.id)


def _rx(engine, rx) -> Prescription:
    with transaction(engine, write=False) as db:
        return db.get(Prescription, rx.id)


def _dispensed(engine, rx) -> list[int]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(
            select(PrescriptionItem.quantity_dispensed).where(PrescriptionItem.prescription_id == rx.id).order_by(PrescriptionItem.id)
        ))


def _dispense_movements(engine) -> list[StockMovement]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(
            select(StockMovement).where(StockMovement.kind == MovementKind.dispense).order_by(StockMovement.id)
        ))


def _audit_count(engine, action) -> int:
    with transaction(engine, write=False) as db:
        return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


# ------------------------------------------------------------------------------ FEFO


def test_fefo_takes_from_the_batch_that_expires_first(engine, pharmacist):
    med = make_medicine(engine)
    late = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=300), unit_cost=10)
    early = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=100), unit_cost=20)
    middle = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=200), unit_cost=30)
    rx = make_prescription(engine, items=[(med, 10)])

    result = _dispense(engine, rx, pharmacist)

    assert _on_hand(engine, late, early, middle) == [50, 40, 50]
    [item] = result.items
    [take] = item.takes
    assert (take.batch_id, take.lot_number, take.quantity, take.balance_after) == (early.id, early.lot_number, 10, 40)
    assert (item.prescription_item_id, item.dispensed_now, item.quantity_dispensed, item.outstanding) == (rx.items[0].id, 10, 10, 0)
    assert (result.status, result.previous_status, result.complete) == (PrescriptionStatus.dispensed, PrescriptionStatus.issued, True)
    [movement] = _dispense_movements(engine)
    assert (movement.batch_id, movement.quantity, movement.balance_after, movement.unit_cost) == (early.id, -10, 40, 20)
    assert (movement.prescription_item_id, movement.staff_user_id, movement.witness_user_id) == (rx.items[0].id, pharmacist.user_id, None)
    assert movement.id == take.movement_id
    stored = _rx(engine, rx)
    assert stored.status == PrescriptionStatus.dispensed and stored.dispensed_at is not None
    assert _dispensed(engine, rx) == [10]


def test_fefo_skips_expired_quarantined_recalled_and_depleted_batches(engine, pharmacist):
    med = make_medicine(engine)
    expired = make_batch(engine, medicine=med, quantity=50, expiry=TODAY - timedelta(days=1))
    expires_today = make_batch(engine, medicine=med, quantity=50, expiry=TODAY)
    quarantined = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=2), status=BatchStatus.quarantined)
    recalled = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=3), status=BatchStatus.recalled)
    depleted = make_batch(engine, medicine=med, quantity=5, expiry=TODAY + timedelta(days=4))
    run_in_transaction(stock.adjust_stock, engine=engine, batch_id=depleted.id, counted_quantity=0, reason="empty", actor=pharmacist)
    usable = make_batch(engine, medicine=med, quantity=50, expiry=TODAY + timedelta(days=5))
    rx = make_prescription(engine, items=[(med, 20)])

    result = _dispense(engine, rx, pharmacist, today=TODAY)

    assert [t.batch_id for t in result.items[0].takes] == [usable.id]
    assert _on_hand(engine, expired, expires_today, quarantined, recalled, depleted, usable) == [50, 50, 50, 50, 0, 30]


def test_dispense_splits_across_batches_in_expiry_order_and_depletes_the_first(engine, pharmacist):
    med = make_medicine(engine)
    second = make_batch(engine, medicine=med, quantity=10, expiry=TODAY + timedelta(days=60))
    first = make_batch(engine, medicine=med, quantity=10, expiry=TODAY + timedelta(days=30))
    third = make_batch(engine, medicine=med, quantity=10, expiry=TODAY + timedelta(days=90))
    rx = make_prescription(engine, items=[(med, 15)])

    result = _dispense(engine, rx, pharmacist)

    takes = result.items[0].takes
    assert [(t.batch_id, t.quantity, t.balance_after) for t in takes] == [(first.id, 10, 0), (second.id, 5, 5)]
    assert _on_hand(engine, first, second, third) == [0, 5, 10]
    assert [_batch(engine, b).status for b in (first, second, third)] == [BatchStatus.depleted, BatchStatus.active, BatchStatus.active]
    assert [(m.batch_id, m.quantity, m.balance_after) for m in _dispense_movements(engine)] == [(first.id, -10, 0), (second.id, -5, 5)]


def test_batches_with_the_same_expiry_are_taken_in_id_order(engine, pharmacist):
    med = make_medicine(engine)
    expiry = TODAY + timedelta(days=50)
    a = make_batch(engine, medicine=med, quantity=4, expiry=expiry)
    b = make_batch(engine, medicine=med, quantity=4, expiry=expiry)
    rx = make_prescription(engine, items=[(med, 6)])
    result = _dispense(engine, rx, pharmacist)
    assert [(t.batch_id, t.quantity) for t in result.items[0].takes] == [(a.id, 4), (b.id, 2)]


def test_several_lines_of_several_medicines(engine, pharmacist):
    a = make_medicine(engine)
    b = make_medicine(engine)
    batch_a = make_batch(engine, medicine=a, quantity=30)
    batch_b = make_batch(engine, medicine=b, quantity=30)
    rx = make_prescription(engine, items=[(b, 7), (a, 5), (b, 3)])
    result = _dispense(engine, rx, pharmacist)
    assert sorted((i.prescription_item_id, i.dispensed_now) for i in result.items) == [
        (rx.items[0].id, 7), (rx.items[1].id, 5), (rx.items[2].id, 3)]
    assert _on_hand(engine, batch_a, batch_b) == [25, 20]
    assert _dispensed(engine, rx) == [7, 5, 3]
    assert result.units_dispensed == 15


# ------------------------------------------------------------------- not enough stock


def test_insufficient_stock_takes_nothing_and_names_each_short_medicine(engine, pharmacist):
    plenty = make_medicine(engine, name="Paracetamol", strength="500 mg", form="Tablet")
    short = make_medicine(engine, name="Amoxicillin", strength="250 mg", form="Capsule")
    none = make_medicine(engine, name="Metformin", strength="500 mg", form="Tablet")
    batch_plenty = make_batch(engine, medicine=plenty, quantity=100)
    short_1 = make_batch(engine, medicine=short, quantity=4, expiry=TODAY + timedelta(days=10))
    short_2 = make_batch(engine, medicine=short, quantity=3, expiry=TODAY + timedelta(days=20))
    # the lines in this order: stock of the first ones is taken before the shortage shows
    rx = make_prescription(engine, items=[(plenty, 20), (short, 12), (none, 2)])

    with pytest.raises(InsufficientStock) as caught:
        _dispense(engine, rx, pharmacist)

    assert caught.value.shortages == [("Amoxicillin 250 mg Capsule", 5), ("Metformin 500 mg Tablet", 2)]
    assert "Amoxicillin 250 mg Capsule: 5 short" in caught.value.message
    assert "Metformin 500 mg Tablet: 2 short" in caught.value.message
    assert "Paracetamol" not in caught.value.message
    # nothing taken, nothing recorded
    assert _on_hand(engine, batch_plenty, short_1, short_2) == [100, 4, 3]
    assert [_batch(engine, b).status for b in (short_1, short_2)] == [BatchStatus.active] * 2
    assert _dispense_movements(engine) == []
    assert _dispensed(engine, rx) == [0, 0, 0]
    assert _rx(engine, rx).status == PrescriptionStatus.issued
    assert _audit_count(engine, "dispense") == 0


def test_insufficient_stock_rolls_back_with_an_explicit_transaction_too(engine, pharmacist):
    med = make_medicine(engine)
    other = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=10)
    rx = make_prescription(engine, items=[(med, 10), (other, 1)])
    with pytest.raises(InsufficientStock):
        with transaction(engine) as db:
            dispensing.dispense(db, prescription_id=rx.id, actor=pharmacist)
    assert _on_hand(engine, batch) == [10]
    assert _batch(engine, batch).status == BatchStatus.active


def test_partial_dispense_then_completion(engine, pharmacist):
    med = make_medicine(engine)
    other = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=12, expiry=TODAY + timedelta(days=40))
    make_batch(engine, medicine=other, quantity=50)
    rx = make_prescription(engine, items=[(med, 20), (other, 5)])

    first = _dispense(engine, rx, pharmacist, partial=True)
    assert first.status == PrescriptionStatus.partially_dispensed
    assert sorted((i.dispensed_now, i.outstanding) for i in first.items) == [(5, 0), (12, 8)]
    assert _dispensed(engine, rx) == [12, 5]
    stored = _rx(engine, rx)
    assert (stored.status, stored.dispensed_at) == (PrescriptionStatus.partially_dispensed, None)
    assert (_on_hand(engine, batch), _batch(engine, batch).status) == ([0], BatchStatus.depleted)

    with pytest.raises(InsufficientStock, match="8 short"):  # all-or-nothing for the rest
        _dispense(engine, rx, pharmacist)
    later = make_batch(engine, medicine=med, quantity=30, expiry=TODAY + timedelta(days=90))
    second = _dispense(engine, rx, pharmacist)
    assert (second.previous_status, second.status) == (PrescriptionStatus.partially_dispensed, PrescriptionStatus.dispensed)
    [item] = second.items  # only the line still owed
    assert (item.prescription_item_id, item.dispensed_now, item.outstanding) == (rx.items[0].id, 8, 0)
    assert _dispensed(engine, rx) == [20, 5]
    assert _on_hand(engine, later) == [22]
    stored = _rx(engine, rx)
    assert stored.status == PrescriptionStatus.dispensed and stored.dispensed_at is not None


def test_partial_that_finds_everything_completes_the_prescription(engine, pharmacist):
    med = make_medicine(engine)
    make_batch(engine, medicine=med, quantity=12)
    rx = make_prescription(engine, items=[(med, 12)])
    assert _dispense(engine, rx, pharmacist, partial=True).status == PrescriptionStatus.dispensed


def test_partial_with_no_usable_stock_at_all_is_refused(engine, pharmacist):
    med = make_medicine(engine, name="Insulin", strength="100 IU/ml", form="Injection")
    make_batch(engine, medicine=med, quantity=5, expiry=TODAY)  # expires today: not usable
    rx = make_prescription(engine, items=[(med, 2)])
    with pytest.raises(InsufficientStock, match="Insulin 100 IU/ml Injection: 2 short"):
        _dispense(engine, rx, pharmacist, partial=True)
    assert _rx(engine, rx).status == PrescriptionStatus.issued


# ---------------------------------------------------------------------- status rules


@pytest.mark.parametrize("status", [PrescriptionStatus.dispensed, PrescriptionStatus.cancelled])
def test_only_issued_or_partially_dispensed_prescriptions_are_dispensed(engine, pharmacist, status):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=10)
    rx = make_prescription(engine, items=[(med, 1)], status=status)
    with pytest.raises(InvalidTransition) as caught:
        _dispense(engine, rx, pharmacist)
    assert (caught.value.current, caught.value.requested) == (status.value, "dispensed")
    assert f"{rx.number} is {status.value}" in caught.value.message
    assert _on_hand(engine, batch) == [10]


def test_dispensing_twice_is_refused(engine, pharmacist):
    med = make_medicine(engine)
    make_batch(engine, medicine=med, quantity=10)
    rx = make_prescription(engine, items=[(med, 3)])
    _dispense(engine, rx, pharmacist)
    with pytest.raises(InvalidTransition, match="already been dispensed"):
        _dispense(engine, rx, pharmacist)


def test_unknown_prescription_is_not_found(engine, pharmacist):
    with pytest.raises(NotFound):
        run_in_transaction(dispensing.dispense, engine=engine, prescription_id=987654, actor=pharmacist)


def test_a_prescription_without_lines_has_nothing_to_dispense(engine, pharmacist):
    rx = make_prescription(engine, items=[])
    with pytest.raises(ValidationFailed, match="nothing left to dispense"):
        _dispense(engine, rx, pharmacist)


# ---------------------------------------------------------------- controlled medicines


def test_a_controlled_medicine_needs_a_different_active_witness(engine, pharmacist):
    morphine = make_medicine(engine, name="Morphine", strength="10 mg", form="Tablet", is_controlled=True)
    batch = make_batch(engine, medicine=morphine, quantity=20)
    plain = make_medicine(engine)
    plain_batch = make_batch(engine, medicine=plain, quantity=20)
    rx = make_prescription(engine, items=[(plain, 2), (morphine, 6)])
    inactive = make_staff(engine, role=Role.nurse, is_active=False)

    with pytest.raises(WitnessRequired, match="Morphine 10 mg Tablet is a controlled medicine"):
        _dispense(engine, rx, pharmacist)
    with pytest.raises(WitnessRequired, match="different staff member"):
        _dispense(engine, rx, pharmacist, witness_id=pharmacist.user_id)
    with pytest.raises(WitnessRequired, match="active staff member"):
        _dispense(engine, rx, pharmacist, witness_id=inactive.id)
    with pytest.raises(WitnessRequired, match="active staff member"):
        _dispense(engine, rx, pharmacist, witness_id=inactive.id + 1000)
    with pytest.raises(PermissionDenied, match="signed-in staff member"):
        _dispense(engine, rx, Actor(username="system"), witness_id=inactive.id)
    assert _on_hand(engine, batch, plain_batch) == [20, 20]
    assert _dispense_movements(engine) == []

    witness = make_staff(engine, role=Role.nurse)
    result = _dispense(engine, rx, pharmacist, witness_id=witness.id)
    assert result.complete
    assert _on_hand(engine, batch, plain_batch) == [14, 18]
    movements = _dispense_movements(engine)
    assert {(m.batch_id, m.staff_user_id, m.witness_user_id) for m in movements} == {
        (batch.id, pharmacist.user_id, witness.id), (plain_batch.id, pharmacist.user_id, witness.id)}


def test_a_controlled_line_already_dispensed_needs_no_witness_for_the_rest(engine, pharmacist):
    morphine = make_medicine(engine, is_controlled=True)
    plain = make_medicine(engine)
    make_batch(engine, medicine=morphine, quantity=20)
    make_batch(engine, medicine=plain, quantity=1)
    rx = make_prescription(engine, items=[(morphine, 5), (plain, 3)])
    witness = make_staff(engine, role=Role.pharmacist)
    assert _dispense(engine, rx, pharmacist, partial=True, witness_id=witness.id).status == PrescriptionStatus.partially_dispensed
    make_batch(engine, medicine=plain, quantity=10)
    assert _dispense(engine, rx, pharmacist).status == PrescriptionStatus.dispensed


# ------------------------------------------------------------------------------ audit


def test_dispense_is_audited_with_the_actor(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=10)
    rx = make_prescription(engine, items=[(med, 4)])
    _dispense(engine, rx, pharmacist)
    with transaction(engine, write=False) as db:
        [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "dispense")).all()
    assert (event.actor, event.actor_id, event.entity, event.entity_id) == (pharmacist.username, pharmacist.user_id, "prescription", str(rx.id))
    assert event.changes["status"] == ["issued", "dispensed"]
    assert rx.number in event.summary and batch.lot_number in event.summary


# ------------------------------------------------------------------------- cancelling


def test_cancel_an_issued_prescription(engine, pharmacist):
    med = make_medicine(engine)
    rx = make_prescription(engine, items=[(med, 4)])
    cancelled = run_in_transaction(dispensing.cancel_prescription, engine=engine, prescription_id=rx.id,
                                   actor=pharmacist, reason="duplicate prescription")
    assert cancelled.status == PrescriptionStatus.cancelled
    with transaction(engine, write=False) as db:
        [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "cancel")).all()
    assert (event.actor_id, event.entity_id) == (pharmacist.user_id, str(rx.id))
    assert event.changes == {"status": ["issued", "cancelled"], "reason": "duplicate prescription"}
    with pytest.raises(InvalidTransition, match="already cancelled"):
        run_in_transaction(dispensing.cancel_prescription, engine=engine, prescription_id=rx.id,
                           actor=pharmacist, reason="again")


def test_a_prescription_with_anything_dispensed_cannot_be_cancelled(engine, pharmacist):
    med = make_medicine(engine)
    make_batch(engine, medicine=med, quantity=3)
    rx = make_prescription(engine, items=[(med, 10)])
    _dispense(engine, rx, pharmacist, partial=True)
    with pytest.raises(InvalidTransition, match="partially dispensed; it cannot be cancelled") as caught:
        run_in_transaction(dispensing.cancel_prescription, engine=engine, prescription_id=rx.id,
                           actor=pharmacist, reason="patient left")
    assert caught.value.current == "partially_dispensed"
    assert _rx(engine, rx).status == PrescriptionStatus.partially_dispensed


def test_cancel_needs_a_reason_and_an_existing_prescription(engine, pharmacist):
    rx = make_prescription(engine, items=[(make_medicine(engine), 1)])
    with pytest.raises(ValidationFailed, match="reason"):
        run_in_transaction(dispensing.cancel_prescription, engine=engine, prescription_id=rx.id, actor=pharmacist, reason="  ")
    with pytest.raises(NotFound):
        run_in_transaction(dispensing.cancel_prescription, engine=engine, prescription_id=rx.id + 99, actor=pharmacist, reason="x")
    assert _rx(engine, rx).status == PrescriptionStatus.issued
