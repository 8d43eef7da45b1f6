"""A deterministic demo hospital: departments, doctors, four weeks of clinic sessions,
patients, appointments in realistic states, encounters, stock and prescriptions.

The same ``seed`` and ``today`` give the same rows. ``scale`` multiplies doctors,
patients, appointments and stock (``--scale 100`` for benchmarks). Rows are built in
Python with ids assigned here and written one transaction per table, with ``LOAD DATA
LOCAL INFILE`` on MySQL/MariaDB and multi-row INSERTs on SQLite, so a large hospital
takes minutes. The stock ledger is consistent: every batch's
quantity on hand equals the sum of its movements.
"""

from __future__ import annotations

import csv
import random
import secrets
import time as _time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from models import (
    MRN_FORMAT,
    Admission,
    Appointment,
    AuditEvent,
    Bed,
    ClinicSession,
    Department,
    Doctor,
    DoctorDepartment,
    Encounter,
    Medicine,
    Patient,
    Prescription,
    PrescriptionItem,
    Role,
    Room,
    StaffUser,
    StockBatch,
    StockMovement,
    Supplier,
    Ward,
)
from portal.core import clock
from portal.core.db import transaction
from portal.core.passwords import hash_password
from portal.core.settings import get_settings
from portal.core.vocabulary import AuditAction, Entity
from portal.ops.seed.bulk import can_load, load_rows
from portal.ops.seed.reference import DATA_DIR, load_icd10, load_medicines
from portal.services.national_id import check_character
from portal.services.references import new_reference

CHUNK = 5000

#: (code, department name from departments.csv, location, specialty of its doctors)
DEPARTMENTS = [
    ("AE", "Accident And Emergency Care", "Building A, ground floor", "Emergency Medicine"),
    ("CARD", "Cardiology", "Building B, 3rd floor", "Cardiology"),
    ("DIAB", "Diabetology", "Building B, 2nd floor", "Endocrinology"),
    ("DERM", "Dermatology", "Building C, 1st floor", "Dermatology"),
    ("ENT", "ENT", "Building C, 2nd floor", "Otorhinolaryngology"),
    ("GAST", "Gastroenterology", "Building B, 4th floor", "Gastroenterology"),
    ("GSUR", "General Surgery", "Building D, 2nd floor", "General Surgery"),
    ("GYN", "Gynaecology", "Building E, 1st floor", "Obstetrics and Gynecology"),
    ("NEUR", "Neurology", "Building B, 5th floor", "Neurology"),
    ("ONC", "Oncology", "Building F, 1st floor", "Oncology"),
    ("ORTH", "Orthopaedics", "Building D, 3rd floor", "Orthopedics"),
    ("URO", "Urology", "Building D, 4th floor", "Urology"),
]
TITLES = [  # (title, share, registration fee in fen)
    ("Chief Physician", 0.15, 5000),
    ("Associate Chief Physician", 0.25, 3000),
    ("Attending Physician", 0.40, 2000),
    ("Resident Physician", 0.20, 1000),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉力鹏宇浩然欣怡子涵梓萱雨轩佳琪思远嘉怡晨阳博文俊杰一鸣婷婷玉兰志强丹丹"
DISTRICTS = ["黄浦区", "徐汇区", "长宁区", "静安区", "普陀区", "虹口区", "杨浦区", "浦东新区", "闵行区", "宝山区"]
STREETS = ["南京西路", "淮海中路", "衡山路", "延安西路", "四川北路", "世纪大道", "漕溪北路", "长寿路", "控江路", "莲花路"]
ALLERGIES = ["Penicillin", "Sulfa drugs", "Aspirin", "Peanuts", "Iodine contrast", "Latex"]
COMPLAINTS = [
    ("Headache for three days", "R51"), ("Chest pain on exertion", "I20"), ("High blood pressure follow-up", "I10"),
    ("Cough and fever", "J06"), ("Abdominal pain after meals", "K29"), ("Heartburn", "K21"),
    ("Lower back pain", "M54"), ("Knee pain after a fall", "M25"), ("Skin rash, itching", "L30"),
    ("Blood sugar check", "E11"), ("Dizziness", "R42"), ("Painful urination", "N39"),
    ("Ear pain", "H66"), ("Sore throat", "J02"), ("Shortness of breath", "J45"),
]
SUPPLIERS = [
    ("Sinopharm Shanghai Distribution", "Zhou Lin"), ("Shanghai Pharma Logistics", "Chen Hao"),
    ("China Resources Pharmaceutical", "Li Na"), ("Jointown Pharmaceutical", "Wang Qiang"),
    ("Huadong Medicine Supply", "Xu Ming"), ("Yangtze River Medical Trading", "Sun Yue"),
    ("East China Hospital Supplies", "Guo Fang"), ("Pudong Medical Wholesale", "He Jun"),
]
DOSAGES = ["1 tablet three times daily", "1 tablet twice daily", "1 tablet once daily at night",
           "2 tablets twice daily", "1 capsule three times daily", "As directed"]
STAFF = [  # (username, full name, role)
    ("admin", "Hospital Administrator", Role.admin),
    ("reception", "Front Desk (周小红)", Role.receptionist),
    ("doctor", None, Role.doctor),
    ("nurse", "Ward Nurse (林静)", Role.nurse),
    ("pharmacist", "Pharmacist (陈刚)", Role.pharmacist),
]
SESSIONS = [(time(8, 0), time(12, 0)), (time(13, 30), time(17, 0))]


@dataclass
class SeedReport:
    """What a seeding run wrote.

    Attributes:
        counts (dict[str, int]): rows inserted per table.
        seconds (float): wall time of the run.
        passwords (dict[str, str]): demo username -> password (only when generated or set).
    """

    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    passwords: dict[str, str] = field(default_factory=dict)


def _utc(day: date, at: time) -> datetime:
    return clock.at(day, at).astimezone(UTC)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


class _Writer:
    """Write rows per table, each table in its own transaction: ``LOAD DATA LOCAL INFILE``
    on MySQL/MariaDB (``portal.ops.seed.bulk``), multi-row INSERTs in chunks elsewhere or
    when ``bulk`` is False."""

    def __init__(self, engine: Engine, report: SeedReport, progress: Callable[[str], None], *, bulk: bool = True):
        self.engine, self.report, self.progress, self.bulk = engine, report, progress, bulk

    def write(self, model, rows: list[dict]) -> None:
        table = model.__table__
        if self.bulk and can_load(self.engine, table, rows):
            load_rows(self.engine, table, rows, self.progress)
        else:
            with transaction(self.engine) as db:
                for start in range(0, len(rows), CHUNK):
                    db.execute(insert(table), rows[start:start + CHUNK])
                    if len(rows) > CHUNK * 4 and (start // CHUNK) % 10 == 9:
                        self.progress(f"  {table.name}: {start + CHUNK:,} of {len(rows):,}")
        self.report.counts[table.name] = self.report.counts.get(table.name, 0) + len(rows)
        self.progress(f"{table.name}: {len(rows):,} rows")


#: (name, department code, sex policy, floor, rooms, beds per room, daily rate in fen)
WARDS = [
    ("Cardiology Ward 3A", "CARD", "mixed", "3", 4, 4, 8000),
    ("Surgical Ward 2B (men)", "GSUR", "male", "2", 3, 4, 9000),
    ("Surgical Ward 2C (women)", "GSUR", "female", "2", 3, 4, 9000),
]
#: Days of past stays the demo builds before today.
INPATIENT_HISTORY_DAYS = 42


def _seed_inpatients(w: "_Writer", rng: random.Random, today: date, patients: list[dict],
                     doctor_dept: dict[int, int]) -> None:
    """Wards, rooms and beds (``WARDS``); per bed, discharged stays over the last
    ``INPATIENT_HISTORY_DAYS`` days and, for about two beds in three, a patient there now
    (a few with the discharge ordered); some beds being cleaned, one out of service. Each
    patient has at most one stay, so no one is in two beds."""
    codes = {code: i + 1 for i, (code, *_rest) in enumerate(DEPARTMENTS)}
    wards, rooms, beds, admissions = [], [], [], []
    pool = {"male": [p for p in patients if p["gender"] == "male"],
            "female": [p for p in patients if p["gender"] == "female"]}
    for group in pool.values():
        rng.shuffle(group)

    def patient_for(policy: str) -> dict | None:
        sex = policy if policy != "mixed" else rng.choice(("male", "female"))
        return pool[sex].pop() if pool[sex] else None

    anchor = _utc(today, time(7, 0))
    for ward_id, (name, code, policy, floor, n_rooms, per_room, rate) in enumerate(WARDS, start=1):
        dept = codes[code]
        doctors = [d for d, dep in doctor_dept.items() if dep == dept] or [1]
        wards.append({"id": ward_id, "department_id": dept, "name": name, "sex_policy": policy, "floor": floor,
                      "is_active": True})
        for r in range(1, n_rooms + 1):
            room_id = len(rooms) + 1
            rooms.append({"id": room_id, "ward_id": ward_id, "number": f"{floor}{chr(64 + ward_id)}{r:02d}"})
            for b in range(1, per_room + 1):
                bed = {"id": len(beds) + 1, "room_id": room_id, "code": f"{floor}{chr(64 + ward_id)}-{r:02d}-{b}",
                       "status": "free", "daily_rate": rate, "status_note": None}
                beds.append(bed)
                # walk back from today: maybe a current stay, then discharged stays before it
                end = anchor
                if rng.random() < 0.65:
                    patient = patient_for(policy)
                    if patient is not None:
                        start = anchor - timedelta(days=rng.randrange(1, 9), hours=rng.randrange(0, 10))
                        ordered = rng.random() < 0.2
                        admissions.append({
                            "patient_id": patient["id"], "doctor_id": rng.choice(doctors), "department_id": dept,
                            "reason": rng.choice(INPATIENT_REASONS), "bed_id": bed["id"], "admitted_from":
                            rng.choice(("outpatient", "emergency", "direct")),
                            "status": "discharge_ordered" if ordered else "admitted",
                            "active_marker": 1, "bed_marker": 1, "requested_at": start, "admitted_at": start,
                            "discharge_ordered_at": anchor - timedelta(hours=2) if ordered else None,
                            "discharged_at": None,
                        })
                        bed["status"], end = "occupied", start
                elif rng.random() < 0.3:
                    bed["status"] = "cleaning"
                while True:
                    stay_end = end - timedelta(days=rng.randrange(0, 4), hours=rng.randrange(1, 12))
                    start = stay_end - timedelta(days=rng.randrange(1, 12), hours=rng.randrange(0, 12))
                    patient = patient_for(policy) if start > anchor - timedelta(days=INPATIENT_HISTORY_DAYS) else None
                    if patient is None:
                        break
                    admissions.append({
                        "patient_id": patient["id"], "doctor_id": rng.choice(doctors), "department_id": dept,
                        "reason": rng.choice(INPATIENT_REASONS), "bed_id": bed["id"],
                        "admitted_from": rng.choice(("outpatient", "emergency", "direct")), "status": "discharged",
                        "active_marker": None, "bed_marker": None, "requested_at": start, "admitted_at": start,
                        "discharge_ordered_at": stay_end - timedelta(hours=3), "discharged_at": stay_end,
                    })
                    end = start
    free = [b for b in beds if b["status"] == "free"]
    if free:
        free[-1]["status"], free[-1]["status_note"] = "out_of_service", "Bed rail repair"
    admissions.sort(key=lambda a: a["admitted_at"])
    for i, a in enumerate(admissions, start=1):
        a.update(id=i, diagnosis_code=None, encounter_id=None, cancelled_at=None, discharge_note=None,
                 cancel_reason=None)
    w.write(Ward, wards)
    w.write(Room, rooms)
    w.write(Bed, beds)
    w.write(Admission, admissions)


INPATIENT_REASONS = [
    "Chest pain under observation", "Heart failure, decompensated", "Atrial fibrillation, rate control",
    "Elective cholecystectomy", "Appendicitis", "Hernia repair", "Post-operative care", "Pneumonia",
]


def database_is_empty(engine: Engine) -> bool:
    """True when no department, patient or staff account exists yet."""
    with transaction(engine, write=False) as db:
        return not any(
            db.scalar(select(func.count()).select_from(model))
            for model in (Department, Patient, StaffUser)
        )


def seed_demo(
    engine: Engine,
    *,
    scale: int = 1,
    seed: int = 42,
    today: date | None = None,
    demo_password: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    bulk: bool = True,
) -> SeedReport:
    """Load reference data and build the demo hospital into an empty database.

    Args:
        engine (Engine): target database (schema already at head).
        scale (int): size multiplier (1 = 40 doctors, 500 patients, 3,000 appointments).
        seed (int): random seed; the same seed and ``today`` give the same rows.
        today (date | None): the hospital's "today" (local); defaults to the real date.
        demo_password (str | None): password for the demo accounts; random when None.
        progress (Callable[[str], None]): receives one line per step.
        bulk (bool): on MySQL/MariaDB, load the tables with ``LOAD DATA LOCAL INFILE``
            (``portal.ops.seed.bulk``: half the Python time, indexes built once per table);
            False writes every row with INSERTs (the same rows).

    Returns:
        SeedReport: rows per table, duration and the demo passwords.

    Raises:
        ValueError: ``scale`` < 1, or the database already holds hospital data.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    if not database_is_empty(engine):
        raise ValueError("the database already holds hospital data; seed only an empty database")
    started = _time.perf_counter()
    settings = get_settings()
    today = today or clock.today()
    rng = random.Random(seed)
    report = SeedReport()
    w = _Writer(engine, report, progress, bulk=bulk)

    with transaction(engine) as db:
        report.counts["icd10_code"] = load_icd10(db)
        report.counts["medicine"] = load_medicines(db)
    progress(f"reference data: {report.counts['icd10_code']:,} ICD-10 codes, {report.counts['medicine']:,} medicines")
    with open(DATA_DIR / "icd10cm_2018_categories.csv", encoding="utf-8") as fh:
        known_codes = {row[0] for row in csv.reader(fh)}

    # Departments and doctors --------------------------------------------------------
    departments = [
        {"id": i + 1, "code": code, "name": name, "location": location, "phone": f"+86215{i + 1:07d}",
         "description": f"{name} outpatient clinic.", "is_active": True}
        for i, (code, name, location, _spec) in enumerate(DEPARTMENTS)
    ]
    w.write(Department, departments)
    n_doctors = 40 * scale
    doctors, links, doctor_dept, doctor_fee = [], [], {}, {}
    for i in range(1, n_doctors + 1):
        dept = (i - 1) % len(DEPARTMENTS)
        roll, acc = rng.random(), 0.0
        for title, share, fee in TITLES:
            acc += share
            if roll <= acc:
                break
        doctors.append({
            "id": i, "full_name": _name(rng), "title": title, "gender": rng.choice(["female", "male"]),
            "specialty": DEPARTMENTS[dept][3], "phone": f"+86139{i:08d}",
            "email": f"doctor{i}@hospital.example", "bio": f"{title} in {DEPARTMENTS[dept][1]}.",
            "is_active": True,
        })
        doctor_dept[i], doctor_fee[i] = dept + 1, fee
        joined = _utc(today - timedelta(days=365), time(9, 0))
        links.append({"doctor_id": i, "department_id": dept + 1, "created_at": joined})
        if rng.random() < 0.1:
            extra = rng.randrange(len(DEPARTMENTS)) + 1
            if extra != dept + 1:
                links.append({"doctor_id": i, "department_id": extra, "created_at": joined})
    w.write(Doctor, doctors)
    w.write(DoctorDepartment, links)

    # Clinic sessions: 14 days back, 14 days ahead ---------------------------------------
    clinic_sessions = []
    for doc in range(1, n_doctors + 1):
        pattern = set(rng.sample(range(10), rng.choice((4, 5, 6))))  # weekday x am/pm
        capacity = rng.choice((12, 16, 20, 24, 30))
        for offset in range(-14, 14):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for half, (start, end) in enumerate(SESSIONS):
                if day.weekday() * 2 + half not in pattern:
                    continue
                minutes = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
                clinic_sessions.append({
                    "id": len(clinic_sessions) + 1, "doctor_id": doc, "department_id": doctor_dept[doc],
                    "session_date": day, "start_time": start, "end_time": end,
                    "slot_minutes": max(minutes // capacity, 5), "capacity": capacity,
                    "booked_count": 0, "last_queue_number": 0, "fee": doctor_fee[doc],
                    "status": "closed" if day < today else "open", "note": None,
                    "created_at": _utc(today - timedelta(days=30), time(9, 0)),
                })
    # A few sessions are cancelled (doctor away); the rest take bookings.
    for s in clinic_sessions:
        if s["session_date"] > today and rng.random() < 0.02:
            s["status"] = "cancelled"
            s["note"] = "Doctor attending a conference"

    # Patients ---------------------------------------------------------------------
    n_patients = 500 * scale
    patients, national_ids = [], set()
    for i in range(1, n_patients + 1):
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 84))
        nid = None
        if rng.random() < 0.7:
            while nid is None or nid in national_ids:
                body = f"3101{rng.randrange(1, 20):02d}{birth:%Y%m%d}{rng.randrange(1000):03d}"
                nid = body + check_character(body)
            national_ids.add(nid)
        patients.append({
            "id": i, "medical_record_number": MRN_FORMAT.format(i), "full_name": _name(rng),
            "gender": rng.choice(["female", "male"]), "birth_date": birth,
            "phone": f"+86138{rng.randrange(10**8):08d}", "email": None, "national_id": nid,
            "address": f"上海市{rng.choice(DISTRICTS)}{rng.choice(STREETS)}{rng.randrange(1, 999)}号",
            "emergency_contact_name": _name(rng), "emergency_contact_phone": f"+86137{rng.randrange(10**8):08d}",
            "allergies": rng.choice(ALLERGIES) if rng.random() < 0.15 else None,
            "created_at": _utc(today - timedelta(days=rng.randrange(30, 2000)), time(10, 0)),
        })
    w.write(Patient, patients)

    # Appointments -------------------------------------------------------------------
    target = 3000 * scale
    live = [s for s in clinic_sessions if s["status"] != "cancelled"]
    full = [s for s in live if s["session_date"] >= today and rng.random() < 0.05]
    counts: dict[int, int] = {s["id"]: s["capacity"] for s in full}
    places = [s["id"] for s in live if s["id"] not in counts for _ in range(s["capacity"])]
    rng.shuffle(places)
    for sid in places[: max(target - sum(counts.values()), 0)]:
        counts[sid] = counts.get(sid, 0) + 1
    by_id = {s["id"]: s for s in clinic_sessions}
    anchor = _utc(today, time(7, 30))  # the seed's "now": deterministic for a given today
    appointments, references = [], set()
    for sid in sorted(counts):
        s = by_id[sid]
        day, start = s["session_date"], _utc(s["session_date"], s["start_time"])
        seen_patients: set[int] = set()
        for q in range(1, counts[sid] + 1):
            pid = rng.randrange(1, n_patients + 1)
            while pid in seen_patients:
                pid = rng.randrange(1, n_patients + 1)
            seen_patients.add(pid)
            roll = rng.random()
            if day < today:
                status = "completed" if roll < 0.78 else "no_show" if roll < 0.87 else "cancelled"
            elif day == today:
                status = ("completed" if roll < 0.25 else "checked_in" if roll < 0.45 else
                          "confirmed" if roll < 0.75 else "pending" if roll < 0.9 else "cancelled")
            else:
                status = "pending" if roll < 0.45 else "confirmed" if roll < 0.9 else "cancelled"
            booked = min(start - timedelta(hours=rng.randrange(6, 240)), anchor - timedelta(minutes=rng.randrange(5, 600)))
            ref = new_reference(rng)
            while ref in references:
                ref = new_reference(rng)
            references.add(ref)
            seen_at = start + timedelta(minutes=(q - 1) * s["slot_minutes"])
            row = {
                "reference": ref, "patient_id": pid, "clinic_session_id": sid, "doctor_id": s["doctor_id"],
                "department_id": s["department_id"], "session_date": day, "queue_number": q,
                "status": status, "channel": rng.choice(["online", "online", "online", "front_desk", "phone"]),
                "reason": rng.choice(COMPLAINTS)[0] if rng.random() < 0.6 else None, "cancel_reason": None,
                "is_overbooked": False, "active_marker": 1, "submission_key": None, "booked_at": booked,
                "confirmed_at": None, "checked_in_at": None, "completed_at": None, "cancelled_at": None,
                "no_show_at": None,
            }
            if status in ("confirmed", "checked_in", "completed", "no_show"):
                row["confirmed_at"] = booked + timedelta(minutes=rng.randrange(5, 240))
            if status in ("checked_in", "completed"):
                row["checked_in_at"] = seen_at - timedelta(minutes=rng.randrange(5, 30))
            if status == "completed":
                row["completed_at"] = seen_at + timedelta(minutes=rng.randrange(5, 20))
            if status == "no_show":
                row["no_show_at"] = _utc(day, s["end_time"]) + timedelta(minutes=30)
            if status == "cancelled":
                row["cancelled_at"] = booked + timedelta(hours=rng.randrange(1, 5))
                row["cancel_reason"] = rng.choice(["Patient request", "Feeling better", "Clash with work", "Booked by mistake"])
                row["active_marker"] = None
            appointments.append(row)
            s["last_queue_number"] = q
            if row["active_marker"]:
                s["booked_count"] += 1
    for i, row in enumerate(appointments, start=1):
        row["id"] = i
    w.write(ClinicSession, clinic_sessions)
    w.write(Appointment, appointments)

    # Encounters for completed visits ------------------------------------------------------
    encounters = []
    for a in appointments:
        if a["status"] == "completed":
            complaint, code = rng.choice(COMPLAINTS)
            encounters.append({
                "id": len(encounters) + 1, "appointment_id": a["id"], "patient_id": a["patient_id"],
                "doctor_id": a["doctor_id"], "chief_complaint": a["reason"] or complaint,
                "diagnosis_code": code if code in known_codes else None,
                "notes": "Examined; advice given.", "created_at": a["completed_at"],
            })
    w.write(Encounter, encounters)

    # Suppliers, stock and prescriptions -----------------------------------------------------------
    w.write(Supplier, [
        {"id": i, "name": name, "contact_name": contact, "phone": f"+86216{i:07d}",
         "email": f"orders@supplier{i}.example", "address": "Shanghai", "is_active": True}
        for i, (name, contact) in enumerate(SUPPLIERS, start=1)
    ])
    with transaction(engine, write=False) as db:
        medicines = db.execute(select(Medicine.id, Medicine.form, Medicine.is_controlled).order_by(Medicine.id)).all()
    stocked = sorted(rng.sample([m.id for m in medicines], int(len(medicines) * 0.6)))
    oral = [m.id for m in medicines if m.id in set(stocked) and ("ablet" in m.form or "apsule" in m.form) and not m.is_controlled]
    prices = {mid: rng.choice((20, 35, 50, 80, 120, 250, 600, 1500)) for mid in stocked}
    batches, batch_state = [], defaultdict(list)  # medicine -> [batch dict]
    for mid in stocked:
        for b in range(rng.choice((2, 3, 4))):
            roll = rng.random()
            if roll < 0.04:
                expiry = today - timedelta(days=rng.randrange(1, 40))  # past expiry, still active
            elif roll < 0.15:
                expiry = today + timedelta(days=rng.randrange(1, 30))
            else:
                expiry = today + timedelta(days=rng.randrange(30, 1000))
            qty = rng.choice((100, 200, 300, 500, 1000)) * scale
            batch = {
                "id": len(batches) + 1, "medicine_id": mid, "supplier_id": rng.randrange(1, len(SUPPLIERS) + 1),
                "lot_number": f"L{expiry:%y%m}{mid:04d}{b}", "expiry_date": expiry,
                "received_at": _utc(today - timedelta(days=rng.randrange(40, 300)), time(10, 0)),
                "quantity_received": qty, "quantity_on_hand": qty,
                "unit_cost": max(prices[mid] * rng.choice((55, 60, 65, 70)) // 100, 1), "status": "active",
            }
            batches.append(batch)
            batch_state[mid].append(batch)
    movements = [
        {"batch_id": b["id"], "medicine_id": b["medicine_id"], "kind": "receipt", "quantity": b["quantity_received"],
         "balance_after": b["quantity_received"], "prescription_item_id": None, "staff_user_id": None,
         "witness_user_id": None, "unit_cost": b["unit_cost"], "note": "Opening stock", "created_at": b["received_at"]}
        for b in batches
    ]
    prescriptions, items = [], []
    for enc in encounters:
        if rng.random() > 0.5 or not oral:
            continue
        appt = appointments[enc["appointment_id"] - 1]
        created = enc["created_at"]
        rx = {
            "id": len(prescriptions) + 1, "number": f"RX-{appt['session_date']:%Y%m%d}-{len(prescriptions) + 1:06d}",
            "patient_id": enc["patient_id"], "doctor_id": enc["doctor_id"], "appointment_id": appt["id"],
            "diagnosis_code": enc["diagnosis_code"], "status": "issued", "notes": None,
            "created_at": created, "dispensed_at": None,
        }
        lines = []
        for mid in rng.sample(oral, rng.choice((1, 1, 2, 3))):
            lines.append({
                "id": len(items) + len(lines) + 1, "prescription_id": rx["id"], "medicine_id": mid,
                "quantity": rng.choice((6, 10, 14, 20, 28, 30)), "dosage": rng.choice(DOSAGES),
                "duration_days": rng.choice((3, 5, 7, 14)), "quantity_dispensed": 0,
            })
        waiting = appt["session_date"] == today and rng.random() < 0.6
        roll = rng.random()
        if not waiting and roll < 0.03:
            rx["status"] = "cancelled"
        elif not waiting and roll < 0.93:
            when = created + timedelta(minutes=rng.randrange(10, 90))
            picks = []
            for line in lines:
                usable = [b for b in sorted(batch_state[line["medicine_id"]], key=lambda b: b["expiry_date"])
                          if b["quantity_on_hand"] >= line["quantity"] and b["expiry_date"] > appt["session_date"]]
                if not usable:
                    picks = None
                    break
                picks.append((line, usable[0]))
            if picks:
                for line, batch in picks:
                    batch["quantity_on_hand"] -= line["quantity"]
                    line["quantity_dispensed"] = line["quantity"]
                    movements.append({
                        "batch_id": batch["id"], "medicine_id": batch["medicine_id"], "kind": "dispense",
                        "quantity": -line["quantity"], "balance_after": batch["quantity_on_hand"],
                        "prescription_item_id": line["id"], "staff_user_id": None, "witness_user_id": None,
                        "unit_cost": batch["unit_cost"], "note": rx["number"], "created_at": when,
                    })
                rx["status"], rx["dispensed_at"] = "dispensed", when
        prescriptions.append(rx)
        items.extend(lines)
    # Movements were appended per prescription in time order within each batch only if
    # prescriptions are chronological: sort and recompute balances to keep the ledger exact.
    movements.sort(key=lambda m: (m["created_at"], m["kind"] != "receipt"))
    running: dict[int, int] = defaultdict(int)
    for i, m in enumerate(movements, start=1):
        running[m["batch_id"]] += m["quantity"]
        m["balance_after"], m["id"] = running[m["batch_id"]], i
    for b in batches:
        if b["quantity_on_hand"] == 0:
            b["status"] = "depleted"
    # Reorder levels: most medicines comfortably stocked, a few below their level.
    on_hand = defaultdict(int)
    for b in batches:
        if b["status"] == "active" and b["expiry_date"] > today:
            on_hand[b["medicine_id"]] += b["quantity_on_hand"]
    with transaction(engine) as db:
        from sqlalchemy import update

        for mid in stocked:
            level = max(on_hand[mid] // 4, 10)
            if rng.random() < 0.08:
                level = on_hand[mid] + rng.choice((20, 50, 100))
            db.execute(update(Medicine).where(Medicine.id == mid).values(reorder_level=level, unit_price=prices[mid]))
    w.write(StockBatch, batches)
    w.write(Prescription, prescriptions)
    w.write(PrescriptionItem, items)
    w.write(StockMovement, movements)

    # Inpatients: three wards, their beds, today's occupants and the last weeks' stays ----------
    _seed_inpatients(w, rng, today, patients, doctor_dept)

    # Staff accounts ------------------------------------------------------------------
    password = demo_password or settings.portal_demo_password
    staff = []
    for i, (username, full_name, role) in enumerate(STAFF, start=1):
        secret = password or secrets.token_urlsafe(9)
        report.passwords[username] = secret
        doctor_id = 1 if role is Role.doctor else None
        staff.append({
            "id": i, "username": username,
            "full_name": full_name or f"{doctors[0]['title']} {doctors[0]['full_name']}",
            "role": role.value, "password_hash": hash_password(secret), "is_active": True,
            "doctor_id": doctor_id, "login_epoch": 0, "failed_logins": 0,
            "created_at": _utc(today - timedelta(days=30), time(9, 0)),
        })
    w.write(StaffUser, staff)
    report.seconds = _time.perf_counter() - started
    with transaction(engine) as db:
        db.execute(insert(AuditEvent).values(
            occurred_at=clock.now(), actor="system", action=AuditAction.seed, entity=Entity.hospital,
            entity_id=None, summary=f"Demo hospital seeded (scale {scale}, seed {seed})",
            changes={k: v for k, v in report.counts.items()},
        ))
    return report
