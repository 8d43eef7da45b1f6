"""The inpatient integrity rules (``portal.ops.integrity``): what the services write breaks
none, and each rule reports a row broken behind the services' back (direct SQL)."""

from __future__ import annotations

from sqlalchemy import delete, update

from models import Admission, AuditEvent, Bed
from portal.ops.integrity import RULES, check_invariants
from portal.services import inpatient
from tests.test_inpatient import B, S, admit_new, call, world  # noqa: F401  (fixture)
from tests.test_inpatient_reservation import request_new
from tests.test_integrity import _sql


def _found(engine, rule: str) -> list[str]:
    return [str(v) for v in check_invariants(engine) if v.rule == rule]


def _ward_in_every_state(w):
    """An admitted, a discharge-ordered, a discharged, a cancelled and a reserved admission."""
    beds = w["beds"]
    admitted = admit_new(w, beds[0])
    ordered = admit_new(w, beds[1])
    call(w, inpatient.order_discharge, ordered.id)
    gone = admit_new(w, beds[2])
    call(w, inpatient.order_discharge, gone.id)
    call(w, inpatient.discharge, gone.id)
    call(w, inpatient.cancel, request_new(w).id, reason="Went home")
    reserved = request_new(w)
    call(w, inpatient.reserve_bed, reserved.id, bed_id=beds[3].id)
    return admitted, ordered, gone, reserved


def test_the_services_break_no_inpatient_rule(world):
    _ward_in_every_state(world)
    inpatient_rules = {"bed_occupied", "bed_not_holding", "audit_admission"}
    # (the factories' patients have no registration event; that rule is not ours here)
    assert [str(v) for v in check_invariants(world["engine"]) if v.rule in inpatient_rules] == []
    assert {"bed_occupied", "bed_not_holding", "audit_admission"} <= set(RULES)


def test_an_occupied_bed_without_its_patient(world):
    w = world
    admitted, *_ = _ward_in_every_state(w)
    _sql(w["engine"], update(Bed).where(Bed.id == w["male_beds"][0].id).values(status="occupied"))
    assert any("held by 0" in f for f in _found(w["engine"], "bed_occupied"))


def test_an_admitted_patient_whose_bed_is_not_occupied(world):
    w = world
    admitted, *_ = _ward_in_every_state(w)
    _sql(w["engine"], update(Bed).where(Bed.id == admitted.bed_id).values(status="cleaning"))
    found = _found(w["engine"], "bed_occupied")
    assert any(f"admission #{admitted.id}" in f and "is cleaning" in f for f in found), found
    assert any("cleaning but admission" in f for f in _found(w["engine"], "bed_not_holding"))


def test_two_patients_in_one_bed(world):
    w = world
    admitted, ordered, *_ = _ward_in_every_state(w)
    # behind the unique key's back: the second patient's bed_marker cleared, then moved in
    _sql(w["engine"], update(Admission).where(Admission.id == ordered.id).values(bed_id=admitted.bed_id, bed_marker=None),
         unchecked=True)
    found = _found(w["engine"], "bed_occupied")
    assert any("held by 2" in f for f in found) and any("bed_marker" in f for f in found), found


def test_a_free_bed_holding_an_active_admission(world):
    w = world
    admitted, *_ = _ward_in_every_state(w)
    _sql(w["engine"], update(Bed).where(Bed.id == admitted.bed_id).values(status="free"))
    assert any("free but admission" in f for f in _found(w["engine"], "bed_not_holding"))


def test_a_reserved_bed_nobody_waits_for(world):
    w = world
    *_, reserved = _ward_in_every_state(w)
    _sql(w["engine"], update(Admission).where(Admission.id == reserved.id).values(bed_id=None))
    assert any("reserved for 0" in f for f in _found(w["engine"], "bed_not_holding"))


def test_an_admission_change_without_its_audit_event(world):
    w = world
    admitted, ordered, gone, _ = _ward_in_every_state(w)
    _sql(w["engine"], delete(AuditEvent).where(AuditEvent.entity == "admission", AuditEvent.entity_id == str(gone.id),
                                               AuditEvent.action == "discharge"))
    _sql(w["engine"], update(Admission).where(Admission.id == admitted.id).values(status="discharge_ordered"))
    found = _found(w["engine"], "audit_admission")
    assert any(f"admission #{gone.id}" in f and "no discharge" in f for f in found), found
    assert any(f"admission #{admitted.id}" in f and "no order_discharge" in f for f in found), found
