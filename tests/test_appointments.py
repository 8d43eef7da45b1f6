"""The appointment lifecycle: booking rules and every allowed and refused transition."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from models import Appointment, AppointmentStatus, AuditEvent, BookingChannel, ClinicSession, ClinicSessionStatus
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.errors import (
    ClinicSessionNotBookable,
    DuplicateBooking,
    InvalidTransition,
    NotFound,
    SlotFull,
    ValidationFailed,
)
from portal.core.settings import get_settings
from portal.services import appointments as svc
from tests.factories import make_clinic_session, make_patient

CLERK = Actor(username="clerk", user_id=None, role="receptionist", ip="10.0.0.9")
S = AppointmentStatus


def book(engine, clinic_session, patient, **kw):
    with transaction(engine) as db:
        return svc.book(db, clinic_session_id=clinic_session.id, patient_id=patient.id, actor=CLERK, **kw)


def run(engine, fn, *args, **kw):
    with transaction(engine) as db:
        return fn(db, *args, actor=CLERK, **kw)


def load_clinic_session(engine, clinic_session_id):
    with transaction(engine, write=False) as db:
        return db.get(ClinicSession, clinic_session_id)


def local(day, hh, mm=0):
    return datetime.combine(day, time(hh, mm), tzinfo=get_settings().tz)


def test_book_takes_next_queue_number_and_estimates_time(engine):
    s = make_clinic_session(engine, capacity=3, start=time(8, 0), slot_minutes=12)
    first = book(engine, s, make_patient(engine), reason="  cough  ")
    second = book(engine, s, make_patient(engine))
    assert (first.appointment.queue_number, second.appointment.queue_number) == (1, 2)
    assert first.estimated_time == time(8, 0) and second.estimated_time == time(8, 12)
    assert first.appointment.status is S.pending and first.appointment.reason == "cough"
    assert len(first.appointment.reference) == 11 and first.appointment.reference[5] == "-"
    assert load_clinic_session(engine, s.id).booked_count == 2
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "book")).first()
    assert event.actor == "clerk" and event.ip == "10.0.0.9" and event.entity == "appointment"


def test_last_place_then_full(engine):
    s = make_clinic_session(engine, capacity=1)
    book(engine, s, make_patient(engine))
    with pytest.raises(SlotFull, match="filled up"):
        book(engine, s, make_patient(engine))
    assert load_clinic_session(engine, s.id).booked_count == 1
    with transaction(engine, write=False) as db:
        assert db.scalar(select(func.count()).select_from(Appointment)) == 1


def test_closed_cancelled_and_past_sessions_are_not_bookable(engine):
    for status in (ClinicSessionStatus.closed, ClinicSessionStatus.cancelled):
        s = make_clinic_session(engine, status=status)
        with pytest.raises(ClinicSessionNotBookable):
            book(engine, s, make_patient(engine))
    past = make_clinic_session(engine, day=clock.today() - timedelta(days=1))
    with pytest.raises(ClinicSessionNotBookable, match="ended"):
        book(engine, past, make_patient(engine))
    today = make_clinic_session(engine, day=clock.today(), start=time(8, 0), end=time(12, 0))
    with pytest.raises(ClinicSessionNotBookable, match="ended"):
        book(engine, today, make_patient(engine), now=local(clock.today(), 12, 30))
    ok = book(engine, today, make_patient(engine), now=local(clock.today(), 9, 0))
    assert ok.appointment.queue_number == 1


def test_same_patient_twice_in_one_session_refused(engine):
    s = make_clinic_session(engine)
    p = make_patient(engine)
    book(engine, s, p)
    with pytest.raises(DuplicateBooking):
        book(engine, s, p)
    assert load_clinic_session(engine, s.id).booked_count == 1


def test_unknown_clinic_session_or_patient(engine):
    s = make_clinic_session(engine)
    with transaction(engine) as db, pytest.raises(NotFound):
        svc.book(db, clinic_session_id=999999, patient_id=1, actor=CLERK)
    with transaction(engine) as db, pytest.raises(NotFound):
        svc.book(db, clinic_session_id=s.id, patient_id=999999, actor=CLERK)


def test_cancel_frees_the_place_and_numbers_are_not_reused(engine):
    s = make_clinic_session(engine, capacity=1)
    p = make_patient(engine)
    first = book(engine, s, p)
    run(engine, svc.cancel, first.appointment.id, reason="Feeling better")
    assert load_clinic_session(engine, s.id).booked_count == 0
    again = book(engine, s, p)  # the same patient may book again after cancelling
    assert again.appointment.queue_number == 2
    with transaction(engine, write=False) as db:
        cancelled = db.get(Appointment, first.appointment.id)
    assert cancelled.status is S.cancelled and cancelled.cancel_reason == "Feeling better"
    assert cancelled.cancelled_at is not None and cancelled.active_marker is None


def test_cancel_needs_a_reason(engine):
    s = make_clinic_session(engine)
    a = book(engine, s, make_patient(engine)).appointment
    with pytest.raises(ValidationFailed):
        run(engine, svc.cancel, a.id, reason="   ")


def test_repeated_submission_returns_the_first_booking(engine):
    s = make_clinic_session(engine, capacity=5)
    p = make_patient(engine)
    first = book(engine, s, p, submission_key="token-1")
    again = book(engine, s, p, submission_key="token-1")
    assert again.repeated and again.appointment.id == first.appointment.id
    assert load_clinic_session(engine, s.id).booked_count == 1


def test_front_desk_overbooking_needs_override_and_reason(engine):
    s = make_clinic_session(engine, capacity=1)
    book(engine, s, make_patient(engine))
    with pytest.raises(SlotFull):
        book(engine, s, make_patient(engine), channel=BookingChannel.front_desk)
    with pytest.raises(ValidationFailed):
        book(engine, s, make_patient(engine), channel=BookingChannel.online, overbook_reason="urgent")
    extra = book(engine, s, make_patient(engine), channel=BookingChannel.front_desk,
                 overbook_reason="Chest pain, doctor agreed")
    assert extra.appointment.is_overbooked and extra.appointment.queue_number == 2
    sched = load_clinic_session(engine, s.id)
    assert (sched.capacity, sched.booked_count) == (2, 2)
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.entity_id == str(extra.appointment.id))).one()
    assert event.changes["overbook_reason"] == "Chest pain, doctor agreed"
    run(engine, svc.cancel, extra.appointment.id, reason="Sent to A&E")
    sched = load_clinic_session(engine, s.id)
    assert (sched.capacity, sched.booked_count) == (1, 1)


def test_happy_path_transitions_and_timestamps(engine):
    s = make_clinic_session(engine, day=clock.today(), start=time(0, 0), end=time(23, 59))
    a = book(engine, s, make_patient(engine)).appointment
    a = run(engine, svc.confirm, a.id)
    assert a.status is S.confirmed and a.confirmed_at is not None
    a = run(engine, svc.check_in, a.id)
    assert a.status is S.checked_in and a.checked_in_at is not None
    a = run(engine, svc.complete, a.id)
    assert a.status is S.completed and a.completed_at is not None
    with transaction(engine, write=False) as db:
        actions = db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["book", "confirm", "check_in", "complete"]


REFUSED = [
    # (reach this status first, then try, expected message fragment)
    ([], svc.complete, "pending; it cannot be completed"),
    ([], svc.mark_no_show, "pending; it cannot be no show"),
    (["confirm"], svc.confirm, "confirmed; it cannot be confirmed"),
    (["confirm", "check_in"], svc.confirm, "checked in; it cannot be confirmed"),
    (["confirm", "check_in"], svc.check_in, "checked in; it cannot be checked in"),
    (["confirm", "check_in"], lambda s, i, actor: svc.cancel(s, i, actor=actor, reason="x"), "checked in; it cannot be cancelled"),
    (["confirm", "check_in", "complete"], svc.complete, "completed; it cannot be completed"),
    (["cancel"], svc.confirm, "cancelled; it cannot be confirmed"),
    (["cancel"], svc.check_in, "cancelled; it cannot be checked in"),
    (["cancel"], lambda s, i, actor: svc.cancel(s, i, actor=actor, reason="x"), "cancelled; it cannot be cancelled"),
]


@pytest.mark.parametrize("steps, attempt, message", REFUSED)
def test_refused_transitions_name_current_and_requested(engine, steps, attempt, message):
    s = make_clinic_session(engine, day=clock.today(), start=time(0, 0), end=time(23, 59))
    a = book(engine, s, make_patient(engine)).appointment
    for step in steps:
        if step == "cancel":
            run(engine, svc.cancel, a.id, reason="Patient request")
        else:
            run(engine, getattr(svc, {"confirm": "confirm", "check_in": "check_in", "complete": "complete"}[step]), a.id)
    with transaction(engine, write=False) as db:
        before = db.get(Appointment, a.id).status
    with pytest.raises(InvalidTransition, match=message):
        run(engine, attempt, a.id)
    with transaction(engine, write=False) as db:
        assert db.get(Appointment, a.id).status is before


def test_check_in_only_on_the_session_date(engine):
    s = make_clinic_session(engine, day=clock.today() + timedelta(days=2))
    a = book(engine, s, make_patient(engine)).appointment
    with pytest.raises(InvalidTransition, match="only on the day"):
        run(engine, svc.check_in, a.id)


def test_no_show_only_after_the_session_ended(engine):
    s = make_clinic_session(engine, day=clock.today() + timedelta(days=1), start=time(8, 0), end=time(12, 0))
    a = book(engine, s, make_patient(engine)).appointment
    run(engine, svc.confirm, a.id)
    with pytest.raises(InvalidTransition, match="session ends at 12:00"):
        run(engine, svc.mark_no_show, a.id)
    after = local(s.session_date, 12, 30)
    a = run(engine, svc.mark_no_show, a.id, now=after)
    assert a.status is S.no_show and a.no_show_at is not None
    assert load_clinic_session(engine, s.id).booked_count == 1  # a no-show used its place


def test_patient_may_cancel_only_before_the_session_starts(engine):
    s = make_clinic_session(engine, day=clock.today() + timedelta(days=1), start=time(8, 0))
    a = book(engine, s, make_patient(engine)).appointment
    with pytest.raises(InvalidTransition, match="already started"):
        run(engine, svc.cancel, a.id, reason="late", by_patient=True, now=local(s.session_date, 8, 5))
    run(engine, svc.cancel, a.id, reason="changed plans", by_patient=True, now=local(s.session_date, 7, 0))


def test_close_reopen_and_cancel_a_session(engine):
    s = make_clinic_session(engine, capacity=5)
    a1 = book(engine, s, make_patient(engine)).appointment
    a2 = book(engine, s, make_patient(engine)).appointment
    run(engine, svc.confirm, a2.id)
    run(engine, svc.close_clinic_session, s.id)
    with pytest.raises(ClinicSessionNotBookable):
        book(engine, s, make_patient(engine))
    with pytest.raises(InvalidTransition):
        run(engine, svc.close_clinic_session, s.id)
    run(engine, svc.reopen_clinic_session, s.id)
    sched, refs = run(engine, svc.cancel_clinic_session, s.id, reason="Doctor ill")
    assert sched.status is ClinicSessionStatus.cancelled and sched.booked_count == 0
    assert sorted(refs) == sorted([a1.reference, a2.reference])
    with transaction(engine, write=False) as db:
        statuses = db.scalars(select(Appointment.status).where(Appointment.clinic_session_id == s.id)).all()
    assert set(statuses) == {S.cancelled}


def test_a_session_with_patients_seen_cannot_be_cancelled(engine):
    s = make_clinic_session(engine, day=clock.today(), start=time(0, 0), end=time(23, 59))
    a = book(engine, s, make_patient(engine)).appointment
    run(engine, svc.check_in, a.id)
    with pytest.raises(InvalidTransition, match="already been seen"):
        run(engine, svc.cancel_clinic_session, s.id, reason="Doctor ill")
    assert load_clinic_session(engine, s.id).status is ClinicSessionStatus.open


def test_utc_storage_of_timestamps(engine):
    s = make_clinic_session(engine)
    a = book(engine, s, make_patient(engine)).appointment
    assert a.booked_at.tzinfo is not None
    assert abs(a.booked_at - clock.now()) < timedelta(minutes=1)
