"""Inpatient services (``portal.services.inpatient``): every transition allowed and refused,
the database's own guards, and the census against hand-counted stays."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from models import (
    Admission,
    AdmissionStatus,
    AdmittedFrom,
    AuditEvent,
    Bed,
    BedStatus,
    BedTransfer,
    Gender,
    PrescriptionStatus,
    Role,
)
from portal.core import clock
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import InvalidTransition, NotFound, ValidationFailed
from portal.services import census, inpatient
from portal.services.inpatient import AdmissionConflict, BedNotAvailable, DischargeBlocked, SexPolicyViolation
from portal.services.reports import Grain, ReportFilters
from tests.factories import (
    actor_for,
    make_department,
    make_doctor,
    make_icd10,
    make_medicine,
    make_patient,
    make_prescription,
    make_staff,
    make_ward,
)

S, B = AdmissionStatus, BedStatus
#: 2026-03-10 09:00 in the hospital's zone (Asia/Shanghai unless configured).
START = datetime(2026, 3, 10, 9, 0)


@pytest.fixture
def world(engine, hospital_clock):
    """A department, a doctor, a nurse, a mixed ward of 4 beds and a male ward of 2 beds."""
    hospital_clock.freeze(clock.at(START.date(), START.time()))
    department = make_department(engine)
    doctor = make_doctor(engine, department=department)
    nurse = actor_for(make_staff(engine, role=Role.nurse))
    mixed, mixed_beds = make_ward(engine, department=department, beds=4)
    male, male_beds = make_ward(engine, department=department, beds=2, sex_policy="male")
    make_icd10(engine, "J18", "Pneumonia, unspecified organism")
    return {"engine": engine, "department": department, "doctor": doctor, "nurse": nurse,
            "mixed": mixed, "beds": mixed_beds, "male": male, "male_beds": male_beds}


def admit_new(w, bed, patient=None, **kw):
    """Admit a new (or the given) patient to ``bed`` through the service; returns the admission."""
    patient = patient or make_patient(w["engine"])
    return run_in_transaction(
        inpatient.admit_patient, engine=w["engine"], bed_id=bed.id, patient_id=patient.id,
        doctor_id=w["doctor"].id, department_id=w["department"].id, reason=kw.pop("reason", "Pneumonia"),
        actor=w["nurse"], diagnosis_code=kw.pop("diagnosis_code", "J18"),
        admitted_from=kw.pop("admitted_from", AdmittedFrom.emergency), **kw,
    )


def call(w, fn, *args, **kw):
    """Run one service function in its own transaction as the ward nurse."""
    return run_in_transaction(fn, *args, engine=w["engine"], actor=kw.pop("actor", w["nurse"]), **kw)


def bed_status(w, bed) -> BedStatus:
    with transaction(w["engine"], write=False) as db:
        return db.scalar(select(Bed.status).where(Bed.id == bed.id))


def actions(w, entity_id) -> list[str]:
    with transaction(w["engine"], write=False) as db:
        return list(db.scalars(select(AuditEvent.action).where(
            AuditEvent.entity == "admission", AuditEvent.entity_id == str(entity_id)).order_by(AuditEvent.id)))


# -- the whole cycle ------------------------------------------------------------------------


def test_request_admit_transfer_order_discharge_discharge_clean(world):
    w = world
    patient = make_patient(w["engine"], gender=Gender.male)
    admission = call(w, inpatient.request_admission, patient_id=patient.id, doctor_id=w["doctor"].id,
                     department_id=w["department"].id, reason="  Community-acquired  pneumonia ",
                     diagnosis_code="j18", admitted_from=AdmittedFrom.outpatient)
    assert admission.status is S.requested and admission.reason == "Community-acquired pneumonia"
    assert admission.diagnosis_code == "J18" and admission.bed_id is None

    admitted = call(w, inpatient.admit, admission.id, bed_id=w["beds"][0].id)
    assert admitted.status is S.admitted and admitted.bed_id == w["beds"][0].id
    assert admitted.admitted_at == clock.now()
    assert bed_status(w, w["beds"][0]) is B.occupied

    move = call(w, inpatient.transfer, admission.id, to_bed_id=w["male_beds"][0].id, reason="Needs monitoring")
    assert (move.from_bed_id, move.to_bed_id, move.reason) == (w["beds"][0].id, w["male_beds"][0].id, "Needs monitoring")
    assert move.transferred_by == w["nurse"].username
    assert bed_status(w, w["beds"][0]) is B.cleaning
    assert bed_status(w, w["male_beds"][0]) is B.occupied

    ordered = call(w, inpatient.order_discharge, admission.id, note="Stable")
    assert ordered.status is S.discharge_ordered and ordered.discharge_note == "Stable"
    assert bed_status(w, w["male_beds"][0]) is B.occupied  # the order does not free the bed

    done = call(w, inpatient.discharge, admission.id)
    assert done.status is S.discharged and done.discharged_at == clock.now()
    assert done.active_marker is None and done.bed_marker is None and done.bed_id == w["male_beds"][0].id
    assert bed_status(w, w["male_beds"][0]) is B.cleaning

    cleaned = call(w, inpatient.mark_cleaned, w["male_beds"][0].id)
    assert cleaned.status is B.free
    assert actions(w, admission.id) == ["request_admission", "admit", "transfer", "order_discharge", "discharge"]


def test_cancel_a_requested_admission_and_refusals_after(world):
    w = world
    patient = make_patient(w["engine"])
    admission = call(w, inpatient.request_admission, patient_id=patient.id, doctor_id=w["doctor"].id,
                     department_id=w["department"].id, reason="Observation")
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.cancel, admission.id, reason="  ")
    assert refused.value.field == "reason"
    cancelled = call(w, inpatient.cancel, admission.id, reason="Bed found elsewhere")
    assert cancelled.status is S.cancelled and cancelled.active_marker is None
    for fn, kw in ((inpatient.admit, {"bed_id": w["beds"][0].id}), (inpatient.order_discharge, {}),
                   (inpatient.discharge, {}), (inpatient.cancel, {"reason": "again"}),
                   (inpatient.transfer, {"to_bed_id": w["beds"][1].id, "reason": "x"})):
        with pytest.raises(InvalidTransition):
            call(w, fn, admission.id, **kw)
    # the patient may be admitted again once the request was cancelled
    assert admit_new(w, w["beds"][0], patient=patient).status is S.admitted


# -- refusals ---------------------------------------------------------------------------------


def test_a_bed_takes_one_patient(world):
    w = world
    admit_new(w, w["beds"][0])
    with pytest.raises(BedNotAvailable) as refused:
        admit_new(w, w["beds"][0])
    assert refused.value.field == "bed_id" and "occupied" in refused.value.message
    with transaction(w["engine"], write=False) as db:
        assert db.scalar(select(func.count()).select_from(Admission)) == 1  # nothing half-written


def test_a_requested_admission_cannot_take_an_occupied_bed(world):
    w = world
    admit_new(w, w["beds"][0])
    patient = make_patient(w["engine"])
    admission = call(w, inpatient.request_admission, patient_id=patient.id, doctor_id=w["doctor"].id,
                     department_id=w["department"].id, reason="Observation")
    with pytest.raises(BedNotAvailable):
        call(w, inpatient.admit, admission.id, bed_id=w["beds"][0].id)
    with transaction(w["engine"], write=False) as db:
        assert db.get(Admission, admission.id).status is S.requested


def test_a_patient_has_one_active_admission(world):
    w = world
    patient = make_patient(w["engine"])
    first = admit_new(w, w["beds"][0], patient=patient)
    with pytest.raises(AdmissionConflict) as refused:
        admit_new(w, w["beds"][1], patient=patient)
    assert refused.value.field == "patient_id" and f"#{first.id}" in refused.value.message
    assert bed_status(w, w["beds"][1]) is B.free


def test_the_database_refuses_a_second_patient_in_a_bed_and_a_second_active_admission(world):
    """Beneath the services: the unique keys alone refuse both."""
    w = world
    first = admit_new(w, w["beds"][0])
    other = make_patient(w["engine"])
    with pytest.raises(IntegrityError), transaction(w["engine"]) as db:
        db.add(Admission(patient_id=other.id, doctor_id=w["doctor"].id, department_id=w["department"].id,
                         reason="x", status=S.admitted, bed_id=w["beds"][0].id, bed_marker=1, active_marker=1))
        db.flush()
    with pytest.raises(IntegrityError), transaction(w["engine"]) as db:
        db.add(Admission(patient_id=first.patient_id, doctor_id=w["doctor"].id, department_id=w["department"].id,
                         reason="x", status=S.requested, active_marker=1))
        db.flush()


def test_the_ward_sex_policy_is_respected(world):
    w = world
    woman = make_patient(w["engine"], gender=Gender.female)
    with pytest.raises(SexPolicyViolation) as refused:
        admit_new(w, w["male_beds"][0], patient=woman)
    assert refused.value.field == "bed_id" and "male" in refused.value.message
    unknown = make_patient(w["engine"], gender=Gender.unknown)
    with pytest.raises(SexPolicyViolation):
        admit_new(w, w["male_beds"][0], patient=unknown)
    admission = admit_new(w, w["beds"][0], patient=woman)  # a mixed ward takes her
    with pytest.raises(SexPolicyViolation) as refused:
        call(w, inpatient.transfer, admission.id, to_bed_id=w["male_beds"][1].id, reason="Closer to ICU")
    assert refused.value.field == "to_bed_id"
    assert bed_status(w, w["male_beds"][1]) is B.free


def test_transfer_refusals(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    other = admit_new(w, w["beds"][1])
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.transfer, admission.id, to_bed_id=w["beds"][2].id, reason="")
    assert refused.value.field == "reason"
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.transfer, admission.id, to_bed_id=w["beds"][0].id, reason="x")
    assert refused.value.field == "to_bed_id"
    with pytest.raises(BedNotAvailable):
        call(w, inpatient.transfer, admission.id, to_bed_id=w["beds"][1].id, reason="x")
    with pytest.raises(NotFound):
        call(w, inpatient.transfer, admission.id, to_bed_id=999_999, reason="x")
    assert bed_status(w, w["beds"][0]) is B.occupied and other.bed_id == w["beds"][1].id
    with transaction(w["engine"], write=False) as db:
        assert db.scalar(select(func.count()).select_from(BedTransfer)) == 0


def test_discharge_needs_the_order_first_and_a_reason_with_an_open_prescription(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    with pytest.raises(InvalidTransition) as refused:
        call(w, inpatient.discharge, admission.id)
    assert "order the discharge first" in refused.value.message
    rx = make_prescription(w["engine"], patient=_patient(w, admission), doctor=w["doctor"],
                           items=[(make_medicine(w["engine"]), 10)])
    call(w, inpatient.order_discharge, admission.id)
    with pytest.raises(DischargeBlocked) as refused:
        call(w, inpatient.discharge, admission.id)
    assert refused.value.field == "override_reason" and rx.number in refused.value.message
    assert bed_status(w, w["beds"][0]) is B.occupied
    done = call(w, inpatient.discharge, admission.id, override_reason="Patient buys it outside")
    assert done.status is S.discharged
    with transaction(w["engine"], write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "discharge")).one()
    assert "Patient buys it outside" in event.summary and rx.number in event.summary


def test_a_dispensed_prescription_does_not_block_the_discharge(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    make_prescription(w["engine"], patient=_patient(w, admission), doctor=w["doctor"],
                      items=[(make_medicine(w["engine"]), 1)], status=PrescriptionStatus.dispensed)
    call(w, inpatient.order_discharge, admission.id)
    assert call(w, inpatient.discharge, admission.id).status is S.discharged


def _patient(w, admission):
    from models import Patient

    with transaction(w["engine"], write=False) as db:
        patient = db.get(Patient, admission.patient_id)
        db.expunge(patient)
    return patient


def test_order_discharge_only_from_admitted(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    call(w, inpatient.order_discharge, admission.id)
    with pytest.raises(InvalidTransition):
        call(w, inpatient.order_discharge, admission.id)
    with pytest.raises(InvalidTransition):
        call(w, inpatient.cancel, admission.id, reason="no")
    # a discharge-ordered patient can still be moved; the bed is still held
    call(w, inpatient.transfer, admission.id, to_bed_id=w["beds"][1].id, reason="Quieter room")
    assert bed_status(w, w["beds"][1]) is B.occupied


def test_bed_cycle_allowed_and_refused(world):
    w = world
    bed = w["beds"][3]
    with pytest.raises(InvalidTransition):
        call(w, inpatient.mark_cleaned, bed.id)  # free, not cleaning
    with pytest.raises(InvalidTransition):
        call(w, inpatient.return_to_service, bed.id)
    with pytest.raises(ValidationFailed):
        call(w, inpatient.set_out_of_service, bed.id, reason="")
    assert call(w, inpatient.set_out_of_service, bed.id, reason="Broken rail").status is B.out_of_service
    with pytest.raises(BedNotAvailable):
        admit_new(w, bed)
    with pytest.raises(InvalidTransition):
        call(w, inpatient.set_out_of_service, bed.id, reason="again")
    assert call(w, inpatient.return_to_service, bed.id).status is B.cleaning
    assert call(w, inpatient.mark_cleaned, bed.id).status is B.free
    admission = admit_new(w, bed)
    with pytest.raises(InvalidTransition):
        call(w, inpatient.set_out_of_service, bed.id, reason="occupied")
    with pytest.raises(InvalidTransition):
        call(w, inpatient.mark_cleaned, bed.id)
    assert admission.status is S.admitted


def test_request_refusals(world):
    w = world
    patient = make_patient(w["engine"])
    base = {"patient_id": patient.id, "doctor_id": w["doctor"].id, "department_id": w["department"].id,
            "reason": "x"}
    for key, value in (("patient_id", 999_999), ("doctor_id", 999_999), ("department_id", 999_999),
                       ("diagnosis_code", "ZZ9"), ("encounter_id", 999_999)):
        with pytest.raises(NotFound) as refused:
            call(w, inpatient.request_admission, **{**base, key: value})
        assert refused.value.field == key
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.request_admission, **{**base, "reason": "x" * 501})
    assert refused.value.field == "reason"


def test_a_lost_race_is_told_not_overwritten(world):
    """The conditional UPDATE decides: a bed made unavailable after it was read (as by a
    concurrent nurse between the read and the write) refuses the admission."""
    w = world
    patient = make_patient(w["engine"])
    admission = call(w, inpatient.request_admission, patient_id=patient.id, doctor_id=w["doctor"].id,
                     department_id=w["department"].id, reason="x")

    def admit_after_someone_took_the_bed(db, *, actor):
        inpatient.get_bed(db, w["beds"][0].id)  # read while free
        db.execute(update(Bed).where(Bed.id == w["beds"][0].id).values(status=B.reserved))
        return inpatient.admit(db, admission.id, bed_id=w["beds"][0].id, actor=actor)

    with pytest.raises(BedNotAvailable):
        call(w, admit_after_someone_took_the_bed)


# -- census -------------------------------------------------------------------------------------


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return clock.at(day, time(hour, minute))


def test_census_against_hand_counted_stays(world, hospital_clock):
    """Ward A (4 beds) and the male ward M (2 beds), March and April 2026:

    * P1: admitted to A 03-10 09:00, discharged 03-12 10:00 -> midnights 03-11, 03-12: 2 bed-days
      in March; stay 2 days.
    * P2 (male): admitted to A 03-30 20:00, moved to M 04-01 08:00, discharged 04-03 09:00 ->
      A: 03-31, 04-01 (midnight of 04-01 still in A): 1 in March, 1 in April; M: 04-02, 04-03:
      2 in April; admission counted in A/March, discharge in M/April with a stay of 4 days.
    * P3: admitted to A 03-20 10:00 and discharged the same day 15:00 -> 0 bed-days, stay 1 day.
    * P4: admitted to A 04-29 12:00, still there at "now" 04-30 18:00 -> 04-30: 1 bed-day (April).
    """
    w = world
    march10, march12 = date(2026, 3, 10), date(2026, 3, 12)
    a_beds, m_beds = w["beds"], w["male_beds"]

    def at(day, hour):
        hospital_clock.freeze(local(day, hour))

    at(march10, 9)
    p1 = admit_new(w, a_beds[0])
    at(march12, 10)
    call(w, inpatient.order_discharge, p1.id)
    call(w, inpatient.discharge, p1.id)

    at(date(2026, 3, 20), 10)
    p3 = admit_new(w, a_beds[2])
    at(date(2026, 3, 20), 15)
    call(w, inpatient.order_discharge, p3.id)
    call(w, inpatient.discharge, p3.id)

    at(date(2026, 3, 30), 20)
    p2 = admit_new(w, a_beds[1], patient=make_patient(w["engine"], gender=Gender.male))
    at(date(2026, 4, 1), 8)
    call(w, inpatient.transfer, p2.id, to_bed_id=m_beds[0].id, reason="Male bay")
    at(date(2026, 4, 3), 9)
    call(w, inpatient.order_discharge, p2.id)
    call(w, inpatient.discharge, p2.id)

    at(date(2026, 4, 29), 12)
    admit_new(w, a_beds[3])
    at(date(2026, 4, 30), 18)

    filters = ReportFilters(date(2026, 3, 1), date(2026, 4, 30), grain=Grain.month)
    with transaction(w["engine"], write=False) as db:
        report = census.census(db, filters)
    rows = {(r.ward, r.month): r for r in report.rows}
    a, m = w["mixed"].name, w["male"].name
    assert report.months == ["2026-03", "2026-04"]
    got = {key: (r.admissions, r.discharges, r.bed_days, r.average_stay_days) for key, r in rows.items()}
    assert got == {
        (a, "2026-03"): (3, 2, 3, 1.5),   # P1, P2, P3 in; P1 (2 d) and P3 (1 d) out; P1 2 + P2 1
        (a, "2026-04"): (1, 0, 2, None),  # P4 in; P2 1 (04-01) + P4 1 (04-30)
        (m, "2026-03"): (0, 0, 0, None),
        (m, "2026-04"): (0, 1, 2, 4.0),   # P2 out after 4 days (03-30 -> 04-03)
    }
    assert rows[(a, "2026-03")].occupancy_percent == round(100 * 3 / (4 * 31), 1)
    assert rows[(m, "2026-04")].occupancy_percent == round(100 * 2 / (2 * 30), 1)
    total = report.totals["2026-04"]
    assert (total.admissions, total.discharges, total.bed_days, total.beds) == (1, 1, 4, 6)

    one_day = ReportFilters(date(2026, 4, 1), date(2026, 4, 1), grain=Grain.month)
    with transaction(w["engine"], write=False) as db:
        day = {(r.ward, r.month): r for r in census.census(db, one_day).rows}
    assert day[(a, "2026-04")].bed_days == 1 and day[(m, "2026-04")].bed_days == 0
    assert day[(a, "2026-04")].days == 1
