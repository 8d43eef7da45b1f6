"""Stock services: receiving, expiry write-off, quarantine/recall/release, stocktake,
the ledger check and the stock alerts. Runs on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import AuditEvent, BatchStatus, MovementKind, Role, StockBatch, StockMovement
from portal.core import clock
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import BatchNotUsable, NotFound, ValidationFailed
from portal.services import stock
from tests.factories import (
    actor_for,
    assert_ledger_consistent,
    make_batch,
    make_medicine,
    make_staff,
    make_supplier,
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


def _batch(engine, batch_id) -> StockBatch:
    with transaction(engine, write=False) as db:
        return db.get(StockBatch, batch_id)


def _batches(engine, medicine_id) -> list[StockBatch]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(select(StockBatch).where(StockBatch.medicine_id == medicine_id).order_by(StockBatch.id)))


def _movements(engine, batch_id) -> list[StockMovement]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(select(StockMovement).where(StockMovement.batch_id == batch_id).order_by(StockMovement.id)))


def _audits(engine, action) -> list[AuditEvent]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _receive(engine, **kw):
    kw.setdefault("expiry_date", TODAY + timedelta(days=365))
    kw.setdefault("unit_cost", 40)
    return run_in_transaction(stock.receive_stock, engine=engine, **kw)


# ---------------------------------------------------------------------------- receive


def test_receive_creates_an_active_batch_with_a_receipt_movement_and_audit(engine, pharmacist):
    med = make_medicine(engine)
    supplier = make_supplier(engine)
    expiry = TODAY + timedelta(days=400)
    batch = _receive(engine, medicine_id=med.id, lot_number=" AB123 ", expiry_date=expiry, quantity=120,
                     unit_cost=35, supplier_id=supplier.id, actor=pharmacist, note="DN-77")

    assert (batch.lot_number, batch.expiry_date, batch.status) == ("AB123", expiry, BatchStatus.active)
    assert (batch.quantity_on_hand, batch.quantity_received, batch.unit_cost, batch.supplier_id) == (120, 120, 35, supplier.id)
    [movement] = _movements(engine, batch.id)
    assert (movement.kind, movement.quantity, movement.balance_after) == (MovementKind.receipt, 120, 120)
    assert (movement.staff_user_id, movement.unit_cost, movement.note, movement.medicine_id) == (pharmacist.user_id, 35, "DN-77", med.id)
    [event] = _audits(engine, "receive")
    assert (event.actor, event.actor_id, event.entity, event.entity_id) == (pharmacist.username, pharmacist.user_id, "stock_batch", str(batch.id))
    assert event.changes["quantity_on_hand"] == [0, 120]


def test_receiving_the_same_lot_adds_to_its_batch_and_averages_the_cost(engine, pharmacist):
    med = make_medicine(engine)
    first = _receive(engine, medicine_id=med.id, lot_number="L1", quantity=10, unit_cost=100, actor=pharmacist)
    second = _receive(engine, medicine_id=med.id, lot_number="L1", quantity=30, unit_cost=200, actor=pharmacist)

    assert second.id == first.id
    assert len(_batches(engine, med.id)) == 1
    assert (second.quantity_on_hand, second.quantity_received) == (40, 40)
    # (10 x 100 + 30 x 200) / 40 = 175: computed from the quantity before this receipt
    assert second.unit_cost == 175
    movements = _movements(engine, first.id)
    assert [(m.quantity, m.balance_after, m.unit_cost) for m in movements] == [(10, 10, 100), (30, 40, 200)]


def test_lot_numbers_are_one_lot_whatever_their_case(engine, pharmacist):
    med = make_medicine(engine)
    first = _receive(engine, medicine_id=med.id, lot_number="ab-12c", quantity=10, actor=pharmacist)
    second = _receive(engine, medicine_id=med.id, lot_number="AB-12C", quantity=5, actor=pharmacist)
    assert second.id == first.id and second.lot_number == "AB-12C"
    assert [b.quantity_on_hand for b in _batches(engine, med.id)] == [15]


def test_the_same_lot_with_another_expiry_date_is_refused(engine, pharmacist):
    med = make_medicine(engine)
    batch = _receive(engine, medicine_id=med.id, lot_number="L1", quantity=10, actor=pharmacist,
                     expiry_date=TODAY + timedelta(days=100))
    with pytest.raises(ValidationFailed, match="already in stock with expiry date"):
        _receive(engine, medicine_id=med.id, lot_number="L1", quantity=5, actor=pharmacist,
                 expiry_date=TODAY + timedelta(days=101))
    assert _batch(engine, batch.id).quantity_on_hand == 10
    assert len(_movements(engine, batch.id)) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": 0}, "at least 1"),
        ({"quantity": -5}, "at least 1"),
        ({"quantity": 2.5}, "whole number"),
        ({"quantity": True}, "whole number"),
        ({"unit_cost": -1}, "unit cost"),
        ({"expiry_date": TODAY}, "expires after today"),
        ({"expiry_date": TODAY - timedelta(days=30)}, "expires after today"),
        ({"lot_number": "   "}, "lot number"),
        ({"lot_number": "X" * 41}, "at most 40"),
    ],
)
def test_receive_refuses_bad_input(engine, pharmacist, change, message):
    med = make_medicine(engine)
    kw = {"medicine_id": med.id, "lot_number": "L1", "quantity": 10, "actor": pharmacist, **change}
    with pytest.raises(ValidationFailed, match=message):
        _receive(engine, **kw)
    assert _batches(engine, med.id) == []


def test_receive_refuses_an_inactive_or_unknown_medicine(engine, pharmacist):
    inactive = make_medicine(engine, is_active=False)
    with pytest.raises(ValidationFailed, match="not an active stock item"):
        _receive(engine, medicine_id=inactive.id, lot_number="L1", quantity=10, actor=pharmacist)
    with pytest.raises(NotFound):
        _receive(engine, medicine_id=inactive.id + 1000, lot_number="L1", quantity=10, actor=pharmacist)
    assert _batches(engine, inactive.id) == []


def test_a_depleted_batch_that_receives_stock_is_active_again(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=5, lot_number="L1")
    run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=0,
                       reason="broken bottles", actor=pharmacist)
    assert _batch(engine, batch.id).status == BatchStatus.depleted

    again = _receive(engine, medicine_id=med.id, lot_number="L1", quantity=8, actor=pharmacist,
                     expiry_date=batch.expiry_date)
    assert (again.id, again.status, again.quantity_on_hand) == (batch.id, BatchStatus.active, 8)
    assert _movements(engine, batch.id)[-1].balance_after == 8


def test_a_quarantined_lot_stays_quarantined_when_more_arrives(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=5, lot_number="L1")
    run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="cold chain")
    again = _receive(engine, medicine_id=med.id, lot_number="L1", quantity=5, actor=pharmacist, expiry_date=batch.expiry_date)
    assert (again.status, again.quantity_on_hand) == (BatchStatus.quarantined, 10)


@pytest.mark.parametrize("status", [BatchStatus.recalled, BatchStatus.expired])
def test_a_recalled_or_expired_lot_receives_nothing(engine, pharmacist, status):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=5, lot_number="L1")
    if status == BatchStatus.recalled:
        run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist,
                           reason="manufacturer recall", recall=True)
    else:
        run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=batch.id, actor=pharmacist)
    with pytest.raises(BatchNotUsable, match=status.value):
        _receive(engine, medicine_id=med.id, lot_number="L1", quantity=5, actor=pharmacist, expiry_date=batch.expiry_date)


# ------------------------------------------------------------------ expiry write-off


def test_mark_batch_expired_writes_off_what_remains(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=40, unit_cost=25, expiry=TODAY - timedelta(days=2))
    expired = run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=batch.id, actor=pharmacist)

    assert (expired.status, expired.quantity_on_hand) == (BatchStatus.expired, 0)
    write_off = _movements(engine, batch.id)[-1]
    assert (write_off.kind, write_off.quantity, write_off.balance_after) == (MovementKind.expiry_write_off, -40, 0)
    assert (write_off.unit_cost, write_off.staff_user_id) == (25, pharmacist.user_id)
    [event] = _audits(engine, "expire")
    assert event.actor_id == pharmacist.user_id
    assert event.changes["quantity_on_hand"] == [40, 0]
    assert event.changes["value_written_off"] == 1000


def test_a_quarantined_batch_can_be_written_off(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=7, status=BatchStatus.quarantined)
    expired = run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=batch.id, actor=pharmacist)
    assert (expired.status, expired.quantity_on_hand) == (BatchStatus.expired, 0)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (BatchStatus.expired, "already expired"),
        (BatchStatus.depleted, "nothing left to write off"),
        (BatchStatus.recalled, "recalled"),
    ],
)
def test_mark_batch_expired_refuses_a_batch_that_is_already_out(engine, pharmacist, status, message):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=5)
    if status == BatchStatus.expired:
        run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=batch.id, actor=pharmacist)
    elif status == BatchStatus.depleted:
        run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=0,
                           reason="count", actor=pharmacist)
    else:
        run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist,
                           reason="recall", recall=True)
    before = len(_movements(engine, batch.id))
    with pytest.raises(BatchNotUsable, match=message):
        run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=batch.id, actor=pharmacist)
    assert len(_movements(engine, batch.id)) == before


def test_unknown_batch_is_not_found(engine, pharmacist):
    with pytest.raises(NotFound, match="#424242"):
        run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=424242, actor=pharmacist)


# ------------------------------------------------------------ quarantine and release


def test_quarantine_takes_a_batch_out_of_usable_stock_and_release_puts_it_back(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=30)
    q = run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist,
                           reason="damaged cartons")
    assert (q.status, q.quantity_on_hand) == (BatchStatus.quarantined, 30)
    with transaction(engine) as db:
        assert stock.usable_stock_by_medicine(db, [med.id]) == {med.id: (0, None)}
    with pytest.raises(BatchNotUsable, match="already quarantined"):
        run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="again")

    released = run_in_transaction(stock.release_batch, engine=engine, batch_id=batch.id, actor=pharmacist,
                                  reason="inspected: fine")
    assert (released.status, released.quantity_on_hand) == (BatchStatus.active, 30)
    with transaction(engine) as db:
        assert stock.usable_stock_by_medicine(db, [med.id]) == {med.id: (30, batch.expiry_date)}
    assert [m.kind for m in _movements(engine, batch.id)] == [MovementKind.receipt]  # nothing written off
    [quarantined] = _audits(engine, "quarantine")
    [release] = _audits(engine, "release")
    assert quarantined.changes == {"status": ["active", "quarantined"], "reason": "damaged cartons"}
    assert (release.actor_id, release.changes["status"]) == (pharmacist.user_id, ["quarantined", "active"])


def test_release_refuses_a_batch_past_its_expiry_or_not_quarantined(engine, pharmacist):
    med = make_medicine(engine)
    batch = make_batch(engine, medicine=med, quantity=30, expiry=TODAY + timedelta(days=10))
    with pytest.raises(BatchNotUsable, match="only a quarantined batch"):
        run_in_transaction(stock.release_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="x")
    run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="check")
    with pytest.raises(BatchNotUsable, match="cannot be released"):
        run_in_transaction(stock.release_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="ok",
                           today=TODAY + timedelta(days=10))
    assert _batch(engine, batch.id).status == BatchStatus.quarantined


def test_recall_is_final(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=30)
    recalled = run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist,
                                  reason="manufacturer recall 2026/11", recall=True)
    assert (recalled.status, recalled.quantity_on_hand) == (BatchStatus.recalled, 30)
    with pytest.raises(BatchNotUsable, match="only a quarantined batch"):
        run_in_transaction(stock.release_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="x")
    with pytest.raises(BatchNotUsable, match="is recalled"):
        run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason="x")
    assert [e.action for e in _audits(engine, "recall")] == ["recall"]


def test_quarantine_needs_a_reason(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine))
    with pytest.raises(ValidationFailed, match="reason"):
        run_in_transaction(stock.quarantine_batch, engine=engine, batch_id=batch.id, actor=pharmacist, reason=" ")
    assert _batch(engine, batch.id).status == BatchStatus.active


# ------------------------------------------------------------------------- stocktake


def test_adjust_stock_up_and_down(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=50, unit_cost=12)
    down = run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=47,
                              reason="3 tablets crushed", actor=pharmacist)
    assert (down.kind, down.quantity, down.balance_after, down.note) == (MovementKind.adjustment, -3, 47, "3 tablets crushed")
    assert (down.staff_user_id, down.unit_cost) == (pharmacist.user_id, 12)
    up = run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=52,
                            reason="box found in store room", actor=pharmacist)
    assert (up.quantity, up.balance_after) == (5, 52)
    assert _batch(engine, batch.id).quantity_on_hand == 52
    events = _audits(engine, "adjust")
    assert [e.changes["quantity_on_hand"] for e in events] == [[50, 47], [47, 52]]
    assert {e.actor_id for e in events} == {pharmacist.user_id}


def test_a_count_that_matches_records_no_movement_but_is_audited(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=50)
    assert run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=50,
                              reason="monthly count", actor=pharmacist) is None
    assert len(_movements(engine, batch.id)) == 1
    [event] = _audits(engine, "stocktake")
    assert (event.actor_id, event.changes["counted_quantity"]) == (pharmacist.user_id, 50)


def test_counting_zero_depletes_and_counting_more_reactivates(engine, pharmacist):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=5)
    run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=0, reason="none left", actor=pharmacist)
    assert (_batch(engine, batch.id).status, _batch(engine, batch.id).quantity_on_hand) == (BatchStatus.depleted, 0)
    run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=2, reason="found 2", actor=pharmacist)
    assert (_batch(engine, batch.id).status, _batch(engine, batch.id).quantity_on_hand) == (BatchStatus.active, 2)


@pytest.mark.parametrize(
    ("counted", "reason", "message"),
    [(-1, "count", "at least 0"), (1.5, "count", "whole number"), (3, "", "reason"), (3, None, "reason")],
)
def test_adjust_stock_refuses_bad_input(engine, pharmacist, counted, reason, message):
    batch = make_batch(engine, medicine=make_medicine(engine), quantity=5)
    with pytest.raises(ValidationFailed, match=message):
        run_in_transaction(stock.adjust_stock, engine=engine, batch_id=batch.id, counted_quantity=counted,
                           reason=reason, actor=pharmacist)
    assert _batch(engine, batch.id).quantity_on_hand == 5


# ---------------------------------------------------------------------- ledger check


def test_check_stock_ledger_finds_a_corrupted_batch(engine, pharmacist):
    med = make_medicine(engine)
    good = make_batch(engine, medicine=med, quantity=10)
    bad = make_batch(engine, medicine=med, quantity=20)
    with transaction(engine) as db:
        assert stock.check_stock_ledger(db) == []
        db.execute(update(StockBatch).where(StockBatch.id == bad.id).values(quantity_on_hand=25))
    with transaction(engine) as db:
        [problem] = stock.check_stock_ledger(db)
    assert (problem.batch_id, problem.quantity_on_hand, problem.ledger_total) == (bad.id, 25, 20)
    assert problem.last_balance_after == 20
    assert "movements add up to 20" in str(problem)

    with transaction(engine) as db:  # a movement whose balance_after is wrong
        db.execute(update(StockBatch).where(StockBatch.id == bad.id).values(quantity_on_hand=20))
        db.execute(update(StockMovement).where(StockMovement.batch_id == good.id).values(balance_after=7))
    with transaction(engine) as db:
        [problem] = stock.check_stock_ledger(db)
    assert (problem.batch_id, problem.quantity_on_hand, problem.ledger_total) == (good.id, 10, 10)
    assert problem.problems == ["the newest movement's balance is 7, not 10"]
    # (a negative balance_after or quantity_on_hand is also refused by CHECK constraints)

    other = make_medicine(engine)
    with transaction(engine) as db:  # a movement booked on the wrong medicine
        db.execute(update(StockMovement).where(StockMovement.batch_id == good.id).values(balance_after=10, medicine_id=other.id))
    with transaction(engine) as db:
        [problem] = stock.check_stock_ledger(db)
    assert (problem.batch_id, problem.foreign_movements) == (good.id, 1)

    with transaction(engine) as db:  # a batch with no movements at all
        db.execute(update(StockMovement).where(StockMovement.batch_id == good.id).values(medicine_id=med.id))
        db.add(StockBatch(medicine_id=med.id, lot_number="GHOST", expiry_date=TODAY + timedelta(days=9),
                               quantity_on_hand=3, quantity_received=3))
    with transaction(engine) as db:
        [problem] = stock.check_stock_ledger(db)
        assert (problem.lot_number, problem.ledger_total, problem.last_balance_after) == ("GHOST", 0, None)
        db.execute(update(StockBatch).where(StockBatch.lot_number == "GHOST").values(quantity_on_hand=0))
    # repaired: the autouse check after the test sees a consistent ledger again


# ---------------------------------------------------------------------------- alerts


def test_medicines_below_reorder_level_count_only_usable_stock(engine):
    low = make_medicine(engine, reorder_level=50)
    make_batch(engine, medicine=low, quantity=30)
    make_batch(engine, medicine=low, quantity=100, status=BatchStatus.quarantined)  # not usable
    make_batch(engine, medicine=low, quantity=100, expiry=TODAY)  # expires today: not usable
    empty = make_medicine(engine, reorder_level=5)  # no stock at all
    at_level = make_medicine(engine, reorder_level=20)
    make_batch(engine, medicine=at_level, quantity=20)
    make_medicine(engine, reorder_level=0)  # no level: never an alert
    make_medicine(engine, reorder_level=10, is_active=False)  # not stocked any more
    plenty = make_medicine(engine, reorder_level=10)
    make_batch(engine, medicine=plenty, quantity=11)

    with transaction(engine, write=False) as db:
        alerts = stock.medicines_below_reorder_level(db)
    assert [(a.medicine.id, a.usable_quantity, a.shortfall) for a in alerts] == [(low.id, 30, 20), (empty.id, 0, 5)]
    assert alerts[0].reorder_level == 50


def test_batches_expiring_within_a_window(engine):
    med = make_medicine(engine)
    in_1 = make_batch(engine, medicine=med, expiry=TODAY + timedelta(days=1))
    in_30 = make_batch(engine, medicine=med, expiry=TODAY + timedelta(days=30))
    make_batch(engine, medicine=med, expiry=TODAY + timedelta(days=31))
    make_batch(engine, medicine=med, expiry=TODAY)  # already expired (expiry <= today)
    make_batch(engine, medicine=med, expiry=TODAY + timedelta(days=5), status=BatchStatus.quarantined)

    with transaction(engine, write=False) as db:
        found = stock.batches_expiring_within(db, days=30)
        assert [b.id for b in found] == [in_1.id, in_30.id]
        assert found[0].medicine.id == med.id
        assert stock.batches_expiring_within(db, days=0) == []
        with pytest.raises(ValidationFailed):
            stock.batches_expiring_within(db, days=-1)


def test_expired_active_batches(engine):
    med = make_medicine(engine)
    today = make_batch(engine, medicine=med, expiry=TODAY)
    old = make_batch(engine, medicine=med, expiry=TODAY - timedelta(days=40))
    make_batch(engine, medicine=med, expiry=TODAY + timedelta(days=1))
    make_batch(engine, medicine=med, expiry=TODAY - timedelta(days=3), status=BatchStatus.quarantined)
    with transaction(engine, write=False) as db:
        assert [b.id for b in stock.expired_active_batches(db)] == [old.id, today.id]
        assert [b.id for b in stock.expired_active_batches(db, today=TODAY - timedelta(days=1))] == [old.id]


def test_usable_stock_by_medicine(engine):
    a = make_medicine(engine)
    b = make_medicine(engine)
    none = make_medicine(engine)
    make_batch(engine, medicine=a, quantity=10, expiry=TODAY + timedelta(days=90))
    make_batch(engine, medicine=a, quantity=5, expiry=TODAY + timedelta(days=20))
    make_batch(engine, medicine=a, quantity=99, expiry=TODAY - timedelta(days=1))
    make_batch(engine, medicine=a, quantity=99, expiry=TODAY + timedelta(days=2), status=BatchStatus.recalled)
    make_batch(engine, medicine=b, quantity=7, expiry=TODAY + timedelta(days=60))
    with transaction(engine, write=False) as db:
        assert stock.usable_stock_by_medicine(db) == {
            a.id: (15, TODAY + timedelta(days=20)), b.id: (7, TODAY + timedelta(days=60)),
        }
        assert stock.usable_stock_by_medicine(db, [a.id, none.id]) == {
            a.id: (15, TODAY + timedelta(days=20)), none.id: (0, None),
        }
        assert stock.usable_stock_by_medicine(db, []) == {}
        # on the day the earlier batch expires, only the later one counts
        assert stock.usable_stock_by_medicine(db, [a.id], today=TODAY + timedelta(days=20)) == {
            a.id: (10, TODAY + timedelta(days=90)),
        }
