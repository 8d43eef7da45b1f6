"""Inpatient notes and vitals: ``inpatient.record_note``, the table's CHECKs, and the
admin's list/create screen."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from models import AuditEvent, InpatientNote, Role
from portal.core import clock
from portal.core.db import transaction
from portal.core.errors import InvalidTransition, ValidationFailed
from portal.services import inpatient
import re

from tests.admin_html import csrf_token_of, field_errors
from tests.factories import login, make_staff
from tests.test_inpatient import START, admit_new, call, world  # noqa: F401  (fixture)


def test_a_note_with_vitals_is_stamped_by_the_clock_and_audited(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    row = call(w, inpatient.record_note, admission.id, note="  Afebrile,\n comfortable ", temperature_dc=368,
               pulse=72, systolic=120, diastolic=80, respiratory_rate=16, spo2=98)
    with transaction(w["engine"], write=False) as db:
        note = db.get(InpatientNote, row.id)
        event = db.scalars(select(AuditEvent).where(AuditEvent.entity == "inpatient_note")).one()
    assert note.written_at == clock.at(START.date(), START.time()) and note.author == w["nurse"].username
    assert (note.temperature_dc, note.pulse, note.systolic, note.diastolic, note.respiratory_rate, note.spo2) == (
        368, 72, 120, 80, 16, 98)
    assert event.action == "record_note" and event.entity_id == str(row.id)
    plain = call(w, inpatient.record_note, admission.id, note="Slept well")
    assert plain.temperature_dc is None and plain.spo2 is None


@pytest.mark.parametrize("vitals, field", [
    ({"temperature_dc": 36}, "temperature_dc"), ({"pulse": 400}, "pulse"), ({"spo2": 101}, "spo2"),
    ({"respiratory_rate": 0}, "respiratory_rate"), ({"systolic": 80, "diastolic": 90}, "diastolic"),
    ({"heart": 3}, "heart"),
])
def test_implausible_vitals_are_refused_with_their_field(world, vitals, field):
    w = world
    admission = admit_new(w, w["beds"][0])
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.record_note, admission.id, note="x", **vitals)
    assert refused.value.field == field


def test_no_note_on_a_closed_admission_and_no_empty_note(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    with pytest.raises(ValidationFailed) as refused:
        call(w, inpatient.record_note, admission.id, note="  ")
    assert refused.value.field == "note"
    call(w, inpatient.order_discharge, admission.id)
    call(w, inpatient.record_note, admission.id, note="Ready to go")  # discharge ordered: still on the ward
    call(w, inpatient.discharge, admission.id)
    with pytest.raises(InvalidTransition) as refused:
        call(w, inpatient.record_note, admission.id, note="Too late")
    assert refused.value.field == "admission_id"


def test_the_database_refuses_an_implausible_vital(world):
    w = world
    admission = admit_new(w, w["beds"][0])
    for bad in ({"pulse": 5}, {"temperature_dc": 500}, {"systolic": 100, "diastolic": 120}):
        with pytest.raises(IntegrityError):
            with transaction(w["engine"]) as db:
                db.execute(insert(InpatientNote).values(admission_id=admission.id, written_at=clock.now(),
                                                        author="x", note="x", **bad))


def test_the_nurse_writes_a_note_on_the_admin_screen(client, world):
    w = world
    admission = admit_new(w, w["beds"][0])
    make_staff(w["engine"], role=Role.nurse, username="wardnurse")
    assert login(client, "wardnurse").status_code == 302
    page = client.get("/admin/inpatient_note/create")
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_token_of(page.text), "admission": str(admission.id), "note": "BP checked",
            "systolic": "130", "diastolic": "85", "spo2": "97"}
    saved = client.post("/admin/inpatient_note/create", data=data)
    assert saved.status_code == 302, (saved.status_code, field_errors(saved.text), re.findall(r"alert[^>]*>([^<]+)", saved.text))
    refused = client.post("/admin/inpatient_note/create", data={**data, "spo2": "30"})
    assert refused.status_code == 400 and "SpO2 (%) must be between 50 and 100." in refused.text
    with transaction(w["engine"], write=False) as db:
        notes = db.scalars(select(InpatientNote)).all()
    assert [(n.author, n.systolic, n.spo2) for n in notes] == [("wardnurse", 130, 97)]
    listing = client.get("/admin/inpatient_note/list")
    assert listing.status_code == 200 and "BP checked" in listing.text
