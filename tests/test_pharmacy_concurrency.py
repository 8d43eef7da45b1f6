"""Races on stock, with real threads and real row locks (MariaDB pass only).

Each thread runs its own ``portal.core.db.run_in_transaction`` on the test engine; a
``threading.Barrier`` releases them together. The invariants must hold whatever the
interleaving: no stock is dispensed twice, no balance goes negative, the ledger adds up.
"""

from __future__ import annotations

import threading
from collections import Counter
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
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import InsufficientStock, InvalidTransition
from portal.services import dispensing, stock
from portal.services.dispensing import DispenseResult
from tests.factories import (
    actor_for,
    assert_ledger_consistent,
    make_batch,
    make_doctor,
    make_medicine,
    make_patient,
    make_prescription,
    make_staff,
)

TODAY = clock.today()


@pytest.fixture(autouse=True)
def _ledger_stays_consistent(mysql_only):
    yield
    assert_ledger_consistent(mysql_only)


def race(calls) -> list:
    """Run each zero-argument callable in its own thread, all released at once by a
    barrier; return what each returned or raised, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i, call):
        barrier.wait(timeout=60)
        try:
            outcomes[i] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return outcomes


def _kinds(outcomes) -> Counter:
    return Counter(type(o).__name__ for o in outcomes)


def test_fifty_dispenses_of_one_unit_share_thirty_units_exactly(mysql_only):
    engine = mysql_only
    pharmacist = actor_for(make_staff(engine, role=Role.pharmacist))
    med = make_medicine(engine)
    sizes = {12: 10, 10: 20, 8: 30}  # quantity: days to expiry; 30 units in all
    batches = [make_batch(engine, medicine=med, quantity=q, expiry=TODAY + timedelta(days=d)) for q, d in sizes.items()]
    patient, doctor = make_patient(engine), make_doctor(engine)
    prescriptions = [make_prescription(engine, patient=patient, doctor=doctor, items=[(med, 1)]) for _ in range(50)]

    outcomes = race([
        (lambda rx=rx: run_in_transaction(dispensing.dispense, engine=engine, prescription_id=rx.id, actor=pharmacist))
        for rx in prescriptions
    ])

    assert _kinds(outcomes) == {"DispenseResult": 30, "InsufficientStock": 20}, [o for o in outcomes if not isinstance(o, (DispenseResult, InsufficientStock))]
    for o in outcomes:
        if isinstance(o, InsufficientStock):
            assert o.shortages == [(str(med), 1)]
    with transaction(engine, write=False) as db:
        stored = {b.id: b for b in db.scalars(select(StockBatch).where(StockBatch.medicine_id == med.id))}
        assert {(b.quantity_on_hand, b.status) for b in stored.values()} == {(0, BatchStatus.depleted)}
        moves = list(db.scalars(select(StockMovement).where(StockMovement.kind == MovementKind.dispense)))
        assert len(moves) == 30 and sum(m.quantity for m in moves) == -30
        assert all(m.balance_after >= 0 and m.quantity == -1 for m in moves)
        for batch in batches:
            # each balance from (received - 1) down to 0 appears exactly once: every
            # take read back its own balance, none was lost or taken twice
            balances = sorted(m.balance_after for m in moves if m.batch_id == batch.id)
            assert balances == list(range(batch.quantity_received))
        statuses = Counter(db.scalars(select(Prescription.status).where(Prescription.id.in_([rx.id for rx in prescriptions]))))
        assert statuses == {PrescriptionStatus.dispensed: 30, PrescriptionStatus.issued: 20}
        assert db.scalar(select(func.sum(PrescriptionItem.quantity_dispensed))) == 30
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "dispense")) == 30
    winners = {o.prescription_id for o in outcomes if isinstance(o, DispenseResult)}
    assert len(winners) == 30


def test_two_dispenses_of_the_same_prescription_only_one_succeeds(mysql_only):
    engine = mysql_only
    pharmacist = actor_for(make_staff(engine, role=Role.pharmacist))
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=100)
    rx = make_prescription(engine, items=[(med, 30)])

    outcomes = race([
        lambda: run_in_transaction(dispensing.dispense, engine=engine, prescription_id=rx.id, actor=pharmacist),
    ] * 2)

    assert _kinds(outcomes) == {"DispenseResult": 1, "InvalidTransition": 1}
    refused = next(o for o in outcomes if isinstance(o, InvalidTransition))
    assert refused.current == "dispensed"
    with transaction(engine, write=False) as db:
        assert db.get(StockBatch, batch.id).quantity_on_hand == 70
        assert db.scalar(select(func.count()).select_from(StockMovement).where(StockMovement.kind == MovementKind.dispense)) == 1
        assert db.scalar(select(PrescriptionItem.quantity_dispensed).where(PrescriptionItem.prescription_id == rx.id)) == 30


def test_two_partial_dispenses_of_the_same_prescription_do_not_dispense_twice(mysql_only):
    engine = mysql_only
    pharmacist = actor_for(make_staff(engine, role=Role.pharmacist))
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=6)
    rx = make_prescription(engine, items=[(med, 10)])

    outcomes = race([
        lambda: run_in_transaction(dispensing.dispense, engine=engine, prescription_id=rx.id, actor=pharmacist, partial=True),
    ] * 2)

    # the second waits for the first, sees it partially dispensed and finds no stock left
    assert _kinds(outcomes) == {"DispenseResult": 1, "InsufficientStock": 1}
    with transaction(engine, write=False) as db:
        assert db.get(StockBatch, batch.id).quantity_on_hand == 0
        assert db.scalar(select(PrescriptionItem.quantity_dispensed).where(PrescriptionItem.prescription_id == rx.id)) == 6
        assert db.get(Prescription, rx.id).status == PrescriptionStatus.partially_dispensed


def test_simultaneous_deliveries_of_one_new_lot_end_in_one_batch(mysql_only):
    engine = mysql_only
    pharmacist = actor_for(make_staff(engine, role=Role.pharmacist))
    med = make_medicine(engine)
    expiry = TODAY + timedelta(days=200)

    outcomes = race([
        lambda: run_in_transaction(
            stock.receive_stock, engine=engine, medicine_id=med.id, lot_number="NEW-LOT", expiry_date=expiry,
            quantity=5, unit_cost=10, actor=pharmacist,
        ),
    ] * 8)

    assert _kinds(outcomes) == {"StockBatch": 8}, outcomes
    assert len({o.id for o in outcomes}) == 1
    with transaction(engine, write=False) as db:
        [batch] = db.scalars(select(StockBatch).where(StockBatch.medicine_id == med.id)).all()
        assert (batch.quantity_on_hand, batch.quantity_received, batch.unit_cost) == (40, 40, 10)
        balances = sorted(db.scalars(select(StockMovement.balance_after).where(StockMovement.batch_id == batch.id)))
        assert balances == [5, 10, 15, 20, 25, 30, 35, 40]
