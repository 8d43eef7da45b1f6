"""Races on beds and admissions, with real threads and real row locks (MariaDB pass only).

Each thread runs its own ``portal.core.db.run_in_transaction`` on the test engine; a
``threading.Barrier`` releases them together. Whatever the interleaving: no bed holds two
patients, no patient two active admissions, and every loser is told why.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from models import Admission, AdmissionStatus, Bed, BedStatus, BedTransfer, Role
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import DomainError, InvalidTransition
from portal.services import inpatient
from portal.services.inpatient import BedNotAvailable
from tests.factories import actor_for, make_department, make_doctor, make_patient, make_staff, make_ward
from tests.test_pharmacy_concurrency import race


def test_fifty_admissions_race_for_ten_free_beds(mysql_only):
    engine = mysql_only
    department = make_department(engine)
    doctor = make_doctor(engine, department=department)
    nurse = actor_for(make_staff(engine, role=Role.nurse))
    _ward, beds = make_ward(engine, department=department, rooms=5, beds=2)
    patients = [make_patient(engine) for _ in range(50)]

    def admit(i):
        return lambda: run_in_transaction(
            inpatient.admit_patient, engine=engine, bed_id=beds[i % 10].id, patient_id=patients[i].id,
            doctor_id=doctor.id, department_id=department.id, reason="Acute admission", actor=nurse,
        )

    outcomes = race([admit(i) for i in range(50)])
    won = [o for o in outcomes if isinstance(o, Admission)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(won) == 10, Counter(type(o).__name__ for o in outcomes)
    assert len(refused) == 40 and all(isinstance(o, BedNotAvailable) for o in refused)
    assert all("occupied" in o.message and o.field == "bed_id" for o in refused)
    assert sorted(a.bed_id for a in won) == sorted(b.id for b in beds)
    with transaction(engine, write=False) as db:
        per_bed = db.execute(select(Admission.bed_id, func.count()).where(Admission.bed_marker == 1)
                             .group_by(Admission.bed_id)).all()
        assert len(per_bed) == 10 and all(n == 1 for _, n in per_bed)
        assert db.scalar(select(func.count()).select_from(Admission)) == 10  # losers left nothing
        assert set(db.scalars(select(Bed.status))) == {BedStatus.occupied}


def test_fifty_admissions_of_one_patient_race_for_fifty_beds(mysql_only):
    engine = mysql_only
    department = make_department(engine)
    doctor = make_doctor(engine, department=department)
    nurse = actor_for(make_staff(engine, role=Role.nurse))
    _ward, beds = make_ward(engine, department=department, rooms=10, beds=5)
    patient = make_patient(engine)
    outcomes = race([
        (lambda bed=bed: run_in_transaction(
            inpatient.admit_patient, engine=engine, bed_id=bed.id, patient_id=patient.id, doctor_id=doctor.id,
            department_id=department.id, reason="x", actor=nurse))
        for bed in beds
    ])
    assert sum(isinstance(o, Admission) for o in outcomes) == 1, Counter(type(o).__name__ for o in outcomes)
    assert all(isinstance(o, (Admission, DomainError)) for o in outcomes)
    with transaction(engine, write=False) as db:
        assert db.scalar(select(func.count()).select_from(Admission)) == 1
        assert db.scalar(select(func.count()).where(Bed.status == BedStatus.occupied)) == 1


def test_a_transfer_racing_the_discharge(mysql_only):
    """Ten discharge-ordered patients: for each, a transfer and the final discharge race.
    Either the transfer wins (then the discharge frees the NEW bed) or the discharge wins
    (then the transfer is refused and the new bed stays free); never a bed left occupied
    by a discharged patient, never two free beds claimed for one."""
    engine = mysql_only
    department = make_department(engine)
    doctor = make_doctor(engine, department=department)
    nurse = actor_for(make_staff(engine, role=Role.nurse))
    _ward, beds = make_ward(engine, department=department, rooms=4, beds=5)
    admissions = []
    for bed in beds[:10]:
        a = run_in_transaction(inpatient.admit_patient, engine=engine, bed_id=bed.id,
                               patient_id=make_patient(engine).id, doctor_id=doctor.id,
                               department_id=department.id, reason="x", actor=nurse)
        run_in_transaction(inpatient.order_discharge, a.id, engine=engine, actor=nurse)
        admissions.append(a)
    calls = []
    for a, target in zip(admissions, beds[10:]):
        calls.append(lambda a=a, t=target: run_in_transaction(
            inpatient.transfer, a.id, engine=engine, to_bed_id=t.id, reason="Move", actor=nurse))
        calls.append(lambda a=a: run_in_transaction(inpatient.discharge, a.id, engine=engine, actor=nurse))
    outcomes = race(calls)
    discharges = outcomes[1::2]
    assert all(isinstance(o, Admission) and o.status is AdmissionStatus.discharged for o in discharges), discharges
    for transfer_outcome in outcomes[0::2]:
        assert isinstance(transfer_outcome, (BedTransfer, InvalidTransition)), transfer_outcome
    with transaction(engine, write=False) as db:
        assert db.scalar(select(func.count()).where(Bed.status == BedStatus.occupied)) == 0
        assert db.scalar(select(func.count()).where(Admission.bed_marker.is_not(None))) == 0
        moved = db.scalar(select(func.count()).select_from(BedTransfer))
        cleaning = db.scalar(select(func.count()).where(Bed.status == BedStatus.cleaning))
        # each transfer that won left its old bed to cleaning and its new bed to the discharge
        assert cleaning == 10 + moved
        assert moved == sum(isinstance(o, BedTransfer) for o in outcomes[0::2])
