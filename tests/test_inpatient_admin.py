"""The inpatient screens over HTTP: the issue's "done when" walk-through (a ward nurse admits
three patients from the bed board, transfers one, the doctor orders a discharge, the nurse
completes it, the bed goes through cleaning to free, the census shows the day), and the
refusals the screens show."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time

from sqlalchemy import select

from models import Admission, AdmissionStatus, AuditEvent, Bed, BedStatus, Gender, Role
from portal.core import clock
from portal.core.db import transaction
from tests.admin_html import csrf_token_of, field_errors
from tests.factories import (
    login,
    logout,
    make_department,
    make_doctor,
    make_icd10,
    make_patient,
    make_staff,
    make_ward,
)
from tests.test_admin_actions import do_action, flashes

DAY = date(2026, 3, 10)


def _world(engine):
    department = make_department(engine, name="Internal Medicine")
    doctor = make_doctor(engine, department=department, full_name="Dr Ward")
    make_staff(engine, role=Role.nurse, username="nurse1")
    make_staff(engine, role=Role.doctor, username="drward", doctor_id=doctor.id)
    make_icd10(engine, "J18", "Pneumonia, unspecified organism")
    ward, beds = make_ward(engine, department=department, beds=4, name="Ward 5A")
    male_ward, male_beds = make_ward(engine, department=department, beds=1, name="Ward 5B", sex_policy="male")
    return department, doctor, ward, beds, male_beds


def _bed(engine, bed_id) -> Bed:
    with transaction(engine, write=False) as db:
        return db.get(Bed, bed_id)


def _board_rows(client) -> dict[str, str]:
    page = client.get("/admin/bed-board")
    assert page.status_code == 200, page.text
    return dict(re.findall(r'data-bed="([^"]+)" data-status="([^"]+)"', page.text))


def _admit_page(client, bed, **fields):
    page = client.get(f"/admin/bed/admit/{bed.id}")
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_token_of(page.text), **fields}
    return client.post(f"/admin/bed/admit/{bed.id}", data=data)


def test_done_when_walk_through(client, engine, hospital_clock):
    hospital_clock.freeze(clock.at(DAY, time(9, 0)))
    department, doctor, ward, beds, _male = _world(engine)
    patients = [make_patient(engine, full_name=f"Inpatient {i}") for i in range(3)]
    assert login(client, "nurse1").status_code == 302

    board = client.get("/admin/bed-board")
    assert "4 free" in board.text and f'/admin/bed/admit/{beds[0].id}"' in board.text
    for patient, bed in zip(patients, beds):
        response = _admit_page(client, bed, patient_id=patient.id, doctor_id=doctor.id, department_id=department.id,
                               admitted_from="emergency", diagnosis_code="J18", reason="Pneumonia")
        assert response.status_code == 303, field_errors(response.text)
        assert flashes(client, response) == [("success", f"{patient.full_name} admitted to bed {bed.code} "
                                                         f"(admission #{_admission_of(engine, patient).id}).")]
    rows = _board_rows(client)
    assert [rows[b.code] for b in beds] == ["occupied", "occupied", "occupied", "free"]
    assert "1 free" in client.get("/admin/bed-board").text

    # transfer the first patient to the free bed
    first = _admission_of(engine, patients[0])
    response = do_action(client, "admission", "transfer", [first.id], to_bed_id=str(beds[3].id), reason="Quieter bed")
    assert flashes(client, response)[0][0] == "success"
    assert _bed(engine, beds[0].id).status is BedStatus.cleaning
    assert _bed(engine, beds[3].id).status is BedStatus.occupied

    # the doctor orders the second patient's discharge; the bed stays occupied
    second = _admission_of(engine, patients[1])
    logout(client)
    assert login(client, "drward").status_code == 302
    response = do_action(client, "admission", "order-discharge", [second.id], note="Afebrile 48 h")
    assert flashes(client, response)[0][0] == "success"
    assert _admission_of(engine, patients[1]).status is AdmissionStatus.discharge_ordered
    assert _bed(engine, beds[1].id).status is BedStatus.occupied
    assert client.get("/admin/admission/action/discharge", params={"pks": second.id}).status_code == 403

    # the nurse completes it; the bed goes through cleaning to free
    logout(client)
    assert login(client, "nurse1").status_code == 302
    board = client.get("/admin/bed-board").text
    assert f"/admin/admission/action/discharge?pks={second.id}" in board
    response = do_action(client, "admission", "discharge", [second.id])
    assert flashes(client, response)[0][0] == "success"
    assert _admission_of(engine, patients[1]).status is AdmissionStatus.discharged
    assert _bed(engine, beds[1].id).status is BedStatus.cleaning
    for bed in (beds[0], beds[1]):
        response = do_action(client, "bed", "mark-cleaned", [bed.id])
        assert flashes(client, response)[0][0] == "success"
    rows = _board_rows(client)
    assert [rows[b.code] for b in beds] == ["free", "free", "occupied", "occupied"]

    # the census shows the day
    params = {"date_from": DAY.isoformat(), "date_to": DAY.isoformat()}
    report = client.get("/admin/reports/inpatient-census", params=params)
    assert report.status_code == 200, report.text
    exported = client.get("/admin/reports/inpatient-census", params={**params, "export": "by-ward"})
    assert exported.status_code == 200
    table = {(r["Ward"], r["Month"]): r for r in csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff")))}
    row = table[("Ward 5A", "2026-03")]
    assert (row["Admissions"], row["Discharges"], row["Bed-days"], row["Average stay (days)"]) == ("3", "1", "0", "1.0")

    with transaction(engine, write=False) as db:
        done = list(db.scalars(select(AuditEvent.action).where(AuditEvent.entity.in_(("admission", "bed")))
                               .order_by(AuditEvent.id)))
    assert done.count("admit") == 3 and done.count("transfer") == 1 and done.count("discharge") == 1
    assert done.count("mark_cleaned") == 2


def _admission_of(engine, patient) -> Admission:
    with transaction(engine, write=False) as db:
        return db.scalars(select(Admission).where(Admission.patient_id == patient.id).order_by(Admission.id.desc())).first()


def test_the_admit_page_shows_the_services_refusals_next_to_the_field(client, engine, hospital_clock):
    hospital_clock.freeze(clock.at(DAY, time(9, 0)))
    department, doctor, ward, beds, male_beds = _world(engine)
    assert login(client, "nurse1").status_code == 302
    woman = make_patient(engine, gender=Gender.female)
    fields = {"doctor_id": doctor.id, "department_id": department.id, "admitted_from": "direct", "reason": "x"}
    refused = _admit_page(client, male_beds[0], patient_id=woman.id, **fields)
    assert refused.status_code == 400
    assert any("takes male patients only" in e for e in field_errors(refused.text)), field_errors(refused.text)
    assert _bed(engine, male_beds[0].id).status is BedStatus.free

    assert _admit_page(client, beds[0], patient_id=woman.id, **fields).status_code == 303
    other = make_patient(engine)
    refused = _admit_page(client, beds[0], patient_id=other.id, **fields)
    assert refused.status_code == 400 and "is occupied" in refused.text
    refused = _admit_page(client, beds[1], patient_id=woman.id, **fields)
    assert refused.status_code == 400 and "already has an active admission" in refused.text
    missing = _admit_page(client, beds[1], patient_id=other.id, **{**fields, "reason": ""})
    assert missing.status_code == 400 and "Give the reason for admission." in field_errors(missing.text)


def test_views_never_set_a_status_and_roles_are_kept_to_their_actions(client, engine, hospital_clock):
    hospital_clock.freeze(clock.at(DAY, time(9, 0)))
    department, doctor, ward, beds, _ = _world(engine)
    make_staff(engine, role=Role.receptionist, username="desk")
    assert login(client, "desk").status_code == 302
    assert client.get("/admin/bed-board").status_code == 200
    assert client.get(f"/admin/bed/admit/{beds[0].id}").status_code == 403
    logout(client)
    make_staff(engine, role=Role.admin, username="boss")
    assert login(client, "boss").status_code == 302
    form = client.get("/admin/bed/create").text
    assert 'name="status"' not in form and 'name="daily_rate"' in form
    assert client.get("/admin/admission/create").status_code in (403, 404)


def test_doctor_requests_and_the_nurse_reserves_and_admits_from_the_waiting_list(client, engine, hospital_clock):
    hospital_clock.freeze(clock.at(DAY, time(9, 0)))
    department, doctor, ward, beds, _male = _world(engine)
    patient = make_patient(engine, full_name="Waiting Patient")
    assert login(client, "drward").status_code == 302
    page = client.get("/admin/admission/request")
    assert page.status_code == 200, page.text
    fields = {"patient_id": patient.id, "doctor_id": doctor.id, "department_id": department.id,
              "admitted_from": "outpatient", "diagnosis_code": "j18", "reason": "Pneumonia, needs IV antibiotics"}
    refused = client.post("/admin/admission/request", data={"csrf_token": csrf_token_of(page.text),
                                                            **fields, "diagnosis_code": "Z999"})
    assert refused.status_code == 400 and "not an ICD-10 code" in refused.text
    response = client.post("/admin/admission/request", data={"csrf_token": csrf_token_of(page.text), **fields})
    assert response.status_code == 303, field_errors(response.text)
    admission = _admission_of(engine, patient)
    assert admission.status is AdmissionStatus.requested and admission.diagnosis_code == "J18"
    board = client.get("/admin/bed-board").text
    assert f'data-waiting-admission="{admission.id}"' in board and "Waiting Patient" in board
    assert "Reserve bed" not in board  # a doctor does not manage beds

    logout(client)
    assert login(client, "nurse1").status_code == 302
    assert client.get("/admin/admission/request").status_code == 403
    board = client.get("/admin/bed-board").text
    assert f"/admin/admission/action/reserve-bed?pks={admission.id}" in board
    response = do_action(client, "admission", "reserve-bed", [admission.id], bed_id=str(beds[2].id))
    assert flashes(client, response)[0][0] == "success"
    assert _bed(engine, beds[2].id).status is BedStatus.reserved
    assert dict(_board_rows(client))[beds[2].code] == "reserved"
    response = do_action(client, "admission", "release-bed", [admission.id])
    assert flashes(client, response)[0][0] == "success" and _bed(engine, beds[2].id).status is BedStatus.free
    response = do_action(client, "admission", "reserve-bed", [admission.id], bed_id=str(beds[2].id))
    board = client.get("/admin/bed-board").text
    assert f"/admin/admission/action/admit?pks={admission.id}" in board and f"{beds[2].code}" in board
    response = do_action(client, "admission", "admit", [admission.id], bed_id=str(beds[2].id))
    assert flashes(client, response)[0][0] == "success"
    assert _admission_of(engine, patient).status is AdmissionStatus.admitted
    assert _bed(engine, beds[2].id).status is BedStatus.occupied
    assert f'data-waiting-admission="{admission.id}"' not in client.get("/admin/bed-board").text
