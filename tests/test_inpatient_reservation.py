"""Bed reservation (``inpatient.reserve_bed`` / ``release_reservation``): a free bed is
reserved for a requested admission, admitting it takes that bed, and the refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Admission, AdmissionStatus, AuditEvent, Gender
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import InvalidTransition
from portal.services import inpatient
from portal.services.inpatient import BedNotAvailable, SexPolicyViolation
from tests.factories import make_patient
from tests.test_inpatient import B, S, admit_new, bed_status, call, world  # noqa: F401  (fixture)


def request_new(w, patient=None):
    """A new requested admission of a new (or the given) patient."""
    patient = patient or make_patient(w["engine"])
    return run_in_transaction(
        inpatient.request_admission, engine=w["engine"], patient_id=patient.id, doctor_id=w["doctor"].id,
        department_id=w["department"].id, reason="Pneumonia", actor=w["nurse"], diagnosis_code="J18")


def test_reserve_then_admit_takes_the_reserved_bed(world):
    w = world
    bed = w["beds"][0]
    admission = request_new(w)
    reserved = call(w, inpatient.reserve_bed, admission.id, bed_id=bed.id)
    assert reserved.status is S.requested and reserved.bed_id == bed.id and reserved.bed_marker is None
    assert bed_status(w, bed) is B.reserved
    # nobody else gets it
    with pytest.raises(BedNotAvailable) as refused:
        admit_new(w, bed)
    assert refused.value.field == "bed_id"
    with pytest.raises(BedNotAvailable) as refused:
        call(w, inpatient.reserve_bed, request_new(w).id, bed_id=bed.id)
    assert refused.value.field == "bed_id" and "reserved" in str(refused.value)
    # admitting without a bed takes the reserved one
    admitted = call(w, inpatient.admit, admission.id)
    assert admitted.status is S.admitted and admitted.bed_id == bed.id and admitted.bed_marker == 1
    assert bed_status(w, bed) is B.occupied
    with transaction(w["engine"], write=False) as db:
        actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == admission.id,
                                                                    AuditEvent.entity == "admission")))
    assert actions == ["request_admission", "reserve_bed", "admit"]


def test_release_and_cancel_free_the_reserved_bed(world):
    w = world
    bed, other = w["beds"][0], w["beds"][1]
    admission = request_new(w)
    call(w, inpatient.reserve_bed, admission.id, bed_id=bed.id)
    with pytest.raises(InvalidTransition) as refused:  # one reservation at a time
        call(w, inpatient.reserve_bed, admission.id, bed_id=other.id)
    assert refused.value.field == "admission_id"
    released = call(w, inpatient.release_reservation, admission.id)
    assert released.bed_id is None and released.status is S.requested and bed_status(w, bed) is B.free
    with pytest.raises(InvalidTransition):  # nothing left to release
        call(w, inpatient.release_reservation, admission.id)
    call(w, inpatient.reserve_bed, admission.id, bed_id=bed.id)
    cancelled = call(w, inpatient.cancel, admission.id, reason="Went home")
    assert cancelled.status is S.cancelled and cancelled.bed_id is None and bed_status(w, bed) is B.free


def test_admitting_elsewhere_gives_the_reservation_back(world):
    w = world
    bed, other = w["beds"][0], w["beds"][1]
    admission = request_new(w)
    call(w, inpatient.reserve_bed, admission.id, bed_id=bed.id)
    admitted = call(w, inpatient.admit, admission.id, bed_id=other.id)
    assert admitted.bed_id == other.id and bed_status(w, other) is B.occupied and bed_status(w, bed) is B.free


def test_reservation_refusals(world):
    w = world
    bed = w["beds"][0]
    admitted = admit_new(w, bed)
    with pytest.raises(InvalidTransition):  # not requested
        call(w, inpatient.reserve_bed, admitted.id, bed_id=w["beds"][1].id)
    with pytest.raises(InvalidTransition):
        call(w, inpatient.release_reservation, admitted.id)
    with pytest.raises(BedNotAvailable) as refused:  # occupied bed
        call(w, inpatient.reserve_bed, request_new(w).id, bed_id=bed.id)
    assert "occupied" in str(refused.value)
    woman = make_patient(w["engine"], gender=Gender.female)
    with pytest.raises(SexPolicyViolation) as refused:
        call(w, inpatient.reserve_bed, request_new(w, woman).id, bed_id=w["male_beds"][0].id)
    assert refused.value.field == "bed_id" and bed_status(w, w["male_beds"][0]) is B.free
    # a bed out of service drops the reservation
    waiting = request_new(w)
    call(w, inpatient.reserve_bed, waiting.id, bed_id=w["beds"][2].id)
    call(w, inpatient.set_out_of_service, w["beds"][2].id, reason="Broken rail")
    with transaction(w["engine"], write=False) as db:
        assert db.get(Admission, waiting.id).bed_id is None
