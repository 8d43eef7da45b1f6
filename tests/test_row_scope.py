"""Row-level scope: a doctor never reads or touches another doctor's rows, by any route;
other roles see every row; exports follow the list's filters and are audited."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import AuditEvent, Encounter, Prescription, PrescriptionItem
from portal.core.db import transaction
from tests.access_world import build_world, fingerprint, make_appointment, row_exists, today
from tests.factories import login, logout, make_clinic_session, make_patient

DOCTOR_SCOPED = ["clinic_session", "patient", "appointment", "encounter", "prescription", "prescription_item"]


@pytest.fixture
def world(engine):
    """The two-doctor hospital of ``tests.access_world``."""
    return build_world(engine)


def _as(client, role):
    assert login(client, role).status_code == 302
    return client


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.text[:500]
    return list(csv.DictReader(io.StringIO(response.text)))


@pytest.mark.parametrize("identity", DOCTOR_SCOPED)
def test_doctor_cannot_read_another_doctors_row_by_any_route(identity, world, client, engine):
    _as(client, "doctor")
    mine, theirs = world.sample[identity], world.foreign[identity]

    listed = client.get(f"/admin/{identity}/list", params={"pageSize": 100})
    assert listed.status_code == 200
    assert f"/admin/{identity}/details/{mine}\"" in listed.text
    assert f"/admin/{identity}/details/{theirs}\"" not in listed.text

    assert client.get(f"/admin/{identity}/details/{mine}").status_code == 200
    for path in (f"/admin/{identity}/details/{theirs}", f"/admin/{identity}/edit/{theirs}"):
        assert client.get(path).status_code in (403, 404), path

    before = fingerprint(engine)
    assert client.post(f"/admin/{identity}/edit/{theirs}", data={"notes": "x"}).status_code in (403, 404)
    assert client.delete(f"/admin/{identity}/delete", params={"pks": theirs}).status_code in (403, 404)
    assert client.delete(f"/admin/{identity}/delete", params={"pks": f"{mine},{theirs}"}).status_code in (403, 404)
    assert fingerprint(engine) == before

    exported = client.get(f"/admin/{identity}/export/csv")
    if identity == "prescription_item":
        assert exported.status_code == 403  # doctors do not export lines
    else:
        text = exported.text
        assert exported.status_code == 200
        if identity == "appointment":
            assert world.names["own-appointment"] in text and world.names["other-appointment"] not in text
        if identity == "prescription":
            assert world.names["own-prescription"] in text and world.names["other-prescription"] not in text
        if identity == "patient":
            assert "Patient Own" in text and "Patient Other" not in text
        if identity == "encounter":
            assert "Complaint own" in text and "Complaint other" not in text
        assert len(_csv_rows(exported)) == 1


def test_doctor_ajax_lookups_offer_only_their_own_rows(world, client):
    _as(client, "doctor")

    def lookup(identity, name, term):
        response = client.get(f"/admin/{identity}/ajax/lookup", params={"name": name, "term": term})
        assert response.status_code == 200
        return {r["id"] for r in response.json()["results"]}

    assert lookup("encounter", "patient", "Patient") == {world.sample["patient"]}
    assert lookup("prescription", "patient", "Patient") == {world.sample["patient"]}
    assert lookup("encounter", "appointment", "TST") == {world.sample["appointment"]}
    assert lookup("encounter", "doctor", "Dr") == {str(world.doctor_id)}
    assert lookup("prescription_item", "prescription", "RX") == {world.sample["prescription"]}
    assert lookup("prescription_item", "medicine", "paracetamol") == {str(world.medicine_id)}
    assert lookup("encounter", "diagnosis", "I10") == {"I10"}


def test_admin_ajax_lookups_see_everyone(world, client):
    _as(client, "admin")
    response = client.get("/admin/encounter/ajax/lookup", params={"name": "patient", "term": "Patient"})
    assert {r["id"] for r in response.json()["results"]} == {world.sample["patient"], world.foreign["patient"]}


def _encounter_form(**values):
    form = {"appointment": "", "patient": "", "doctor": "", "chief_complaint": "", "diagnosis": "", "notes": "", "save": "Save"}
    form.update({k: str(v) for k, v in values.items()})
    return form


def test_doctor_creates_encounters_only_as_themselves_and_for_their_patients(world, client, engine):
    _as(client, "doctor")
    # Naming another doctor is overridden: the encounter is the logged-in doctor's.
    response = client.post("/admin/encounter/create", data=_encounter_form(
        patient=world.sample["patient"], doctor=world.other_doctor_id, chief_complaint="Dizzy spells",
    ))
    assert response.status_code == 302, response.text[-800:]
    with transaction(engine, write=False) as db:
        created = db.scalars(select(Encounter).where(Encounter.chief_complaint == "Dizzy spells")).one()
    assert created.doctor_id == world.doctor_id

    # Another doctor's patient (or appointment) is refused and nothing is written.
    for values in (
        {"patient": world.foreign["patient"]},
        {"patient": world.sample["patient"], "appointment": world.foreign["appointment"]},
    ):
        before = fingerprint(engine)
        response = client.post("/admin/encounter/create", data=_encounter_form(
            chief_complaint="Sneaky", doctor=world.doctor_id, **values
        ))
        assert response.status_code == 400 and "You may not choose that" in response.text
        assert fingerprint(engine) == before

    # Editing their own encounter cannot move it to another doctor's patient.
    before = fingerprint(engine)
    response = client.post(f"/admin/encounter/edit/{world.sample['encounter']}", data=_encounter_form(
        patient=world.foreign["patient"], doctor=world.doctor_id, chief_complaint="Moved",
    ))
    assert response.status_code == 400
    assert fingerprint(engine) == before


def test_doctor_prescribes_only_for_their_patients_and_lines_only_on_their_prescriptions(world, client, engine):
    _as(client, "doctor")
    form = {"number": "RX-NEW-1", "patient": world.sample["patient"], "doctor": world.other_doctor_id,
            "appointment": "", "diagnosis": "", "notes": "", "save": "Save"}
    assert client.post("/admin/prescription/create", data=form).status_code == 302
    with transaction(engine, write=False) as db:
        assert db.scalars(select(Prescription).where(Prescription.number == "RX-NEW-1")).one().doctor_id == world.doctor_id
    before = fingerprint(engine)
    form.update(number="RX-NEW-2", patient=world.foreign["patient"])
    assert client.post("/admin/prescription/create", data=form).status_code == 400
    line = {"prescription": world.foreign["prescription"], "medicine": world.medicine_id,
            "quantity": "1", "dosage": "x", "duration_days": "", "save": "Save"}
    assert client.post("/admin/prescription_item/create", data=line).status_code == 400
    assert fingerprint(engine) == before
    line["prescription"] = world.sample["prescription"]
    assert client.post("/admin/prescription_item/create", data=line).status_code == 302
    with transaction(engine, write=False) as db:
        assert db.scalars(select(PrescriptionItem).where(PrescriptionItem.dosage == "x")).one()


def test_pharmacist_reads_every_prescription_but_changes_none(world, client, engine):
    _as(client, "pharmacist")
    for pk in (world.sample["prescription"], world.foreign["prescription"]):
        assert client.get(f"/admin/prescription/details/{pk}").status_code == 200
        assert client.get(f"/admin/prescription/edit/{pk}").status_code == 403
    assert client.get(f"/admin/patient/details/{world.sample['patient']}").status_code == 403
    # Pages never link to what the user may not open: the patient is named, not linked.
    for page in (client.get("/admin/prescription/list").text,
                 client.get(f"/admin/prescription/details/{world.sample['prescription']}").text):
        assert "Patient Own" in page and "/admin/patient/details/" not in page
        assert "/admin/doctor/details/" not in page
    logout(client)
    _as(client, "admin")
    assert f"/admin/patient/details/{world.sample['patient']}" in client.get("/admin/prescription/list").text


def test_other_roles_see_every_row_doctors_only_their_own_on_any_day(world, client, engine):
    tomorrow = make_clinic_session(engine, doctor=type("D", (), {"id": world.doctor_id})(), day=today() + timedelta(days=1))
    later = make_appointment(engine, clinic_session=tomorrow, patient=make_patient(engine, full_name="Patient Tomorrow"))
    _as(client, "nurse")
    listed = client.get("/admin/appointment/list").text
    for reference in (world.names["own-appointment"], world.names["other-appointment"], later.reference):
        assert reference in listed
    logout(client)
    _as(client, "doctor")
    listed = client.get("/admin/appointment/list").text
    assert later.reference in listed and world.names["other-appointment"] not in listed


def test_export_follows_the_lists_search_filters_and_sort_and_is_audited(world, client, engine):
    _as(client, "admin")
    everything = _csv_rows(client.get("/admin/appointment/export/csv"))
    assert len(everything) == 2
    own = world.names["own-appointment"]
    searched = _csv_rows(client.get("/admin/appointment/export/csv", params={"search": own}))
    assert [r["reference"] for r in searched] == [own]
    filtered = _csv_rows(client.get("/admin/appointment/export/csv", params={"doctor_id": world.other_doctor_id}))
    assert [r["reference"] for r in filtered] == [world.names["other-appointment"]]
    sorted_rows = client.get("/admin/appointment/export/json", params={"sortBy": "id", "sort": "asc"})
    assert [r["reference"] for r in sorted_rows.json()] == [own, world.names["other-appointment"]]

    # The list's export link carries the current search and filters.
    page = client.get("/admin/appointment/list", params={"search": own, "page": 1}).text
    assert f"/admin/appointment/export/csv?search={own}" in page

    with transaction(engine, write=False) as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id)).all()
    assert len(events) == 4
    assert all(e.actor == "admin" and e.entity == "appointment" and e.ip == "testclient" for e in events)
    assert [e.changes["rows"] for e in events] == [2, 1, 1, 2]
    assert events[1].changes["filters"] == f"search={own}"
    assert events[2].changes["filters"] == f"doctor_id={world.other_doctor_id}"


def test_export_is_capped(world, client, engine, monkeypatch):
    from views.appointments import AppointmentView

    monkeypatch.setattr(AppointmentView, "export_max_rows", 1)
    _as(client, "admin")
    assert len(_csv_rows(client.get("/admin/appointment/export/csv"))) == 1
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "export")).one()
    assert "capped at 1" in event.summary


def test_guessed_ids_of_rows_that_do_not_exist_are_404(world, client):
    _as(client, "doctor")
    assert client.get("/admin/encounter/details/999999").status_code == 404
    assert client.get("/admin/encounter/edit/999999").status_code == 404
    assert row_exists(client.app.state.engine, Encounter, world.foreign["encounter"])


def test_doctor_workflow_actions_touch_only_their_own_rows(world, client, engine):
    from sqlalchemy import update

    from models import Appointment, AppointmentStatus

    with transaction(engine) as db:
        db.execute(update(Appointment).values(status=AppointmentStatus.checked_in))
    _as(client, "doctor")
    mine, theirs = world.sample["appointment"], world.foreign["appointment"]
    page = client.get("/admin/appointment/action/complete", params={"pks": theirs})
    assert page.status_code == 200 and "no longer exist" in page.text and world.names["other-appointment"] not in page.text
    page = client.get("/admin/appointment/action/complete", params={"pks": f"{mine},{theirs}"})
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/admin/appointment/action/complete", data={
        "csrf_token": token, "pks": f"{mine},{theirs}", "next": "/admin/appointment/list",
    })
    assert response.status_code == 303
    with transaction(engine, write=False) as db:
        statuses = {str(a.id): a.status for a in db.scalars(select(Appointment))}
        completed = db.scalars(select(AuditEvent).where(AuditEvent.action == "complete")).all()
    assert statuses == {mine: AppointmentStatus.completed, theirs: AppointmentStatus.checked_in}
    assert [e.entity_id for e in completed] == [mine]


def test_relation_fields_of_allowed_forms_still_save(client, engine):
    """The related-row check lets through what a role may pick: many-to-many and plain selects."""
    from models import ClinicSession, Doctor, Role
    from tests.factories import make_department, make_staff

    d1, d2 = make_department(engine), make_department(engine)
    make_staff(engine, username="boss")
    _as(client, "boss")
    response = client.post("/admin/doctor/create", data={
        "full_name": "New Doc", "title": "", "gender": "female", "specialty": "", "departments": [str(d1.id), str(d2.id)],
        "phone": "+8613912345678", "email": "", "bio": "", "is_active": "y", "save": "Save",
    })
    assert response.status_code == 302
    with transaction(engine, write=False) as db:
        doctor = db.scalars(select(Doctor).where(Doctor.full_name == "New Doc")).one()
        assert sorted(d.id for d in doctor.departments) == sorted([d1.id, d2.id])
    logout(client)
    make_staff(engine, username="desk", role=Role.receptionist)
    _as(client, "desk")
    response = client.post("/admin/clinic_session/create", data={
        "doctor": str(doctor.id), "department": str(d1.id), "session_date": str(today()), "start_time": "08:00",
        "end_time": "12:00", "slot_minutes": "10", "capacity": "20", "fee": "100", "note": "", "save": "Save",
    })
    assert response.status_code == 302
    with transaction(engine, write=False) as db:
        assert db.scalars(select(ClinicSession).where(ClinicSession.doctor_id == doctor.id)).one()
