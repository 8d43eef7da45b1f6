"""The dashboard's figures: one day at a glance, the queues, what needs attention, counts.

Every figure is an aggregate query (``COUNT``/``SUM``, ``GROUP BY``); only the few
patients listed as "next" are read as rows. Functions take a ``Session`` and keyword
arguments and return small dataclasses. Definitions (the page says the same):

* *Sessions of a day*: clinic sessions that are not cancelled; *running* ones have
  started and not yet ended (hospital-local wall-clock time).
* *Waiting*: appointments still to be seen, i.e. pending, confirmed or checked in.
* *Pending older than a day*: still pending, booked more than 24 hours ago.
* The stock terms (*usable stock*, *below reorder level*, *expiring within the window*,
  *past expiry, still active*) are those of ``portal.services.stock_terms``.
* *Waiting prescriptions*: issued or partially dispensed.

The admin list filters use the ``*_condition`` functions below and the terms of
``portal.services.stock_terms``, so a dashboard figure and the list it links to always
hold the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models import (
    Admission,
    AdmissionStatus,
    Appointment,
    AppointmentStatus,
    Bed,
    BedStatus,
    ClinicSession,
    ClinicSessionStatus,
    Department,
    Doctor,
    Medicine,
    Patient,
    Prescription,
    PrescriptionStatus,
    Room,
    SexPolicy,
    StockBatch,
    Ward,
)
from portal.services import stock_terms
from portal.services.reports import doctor_name

__all__ = [
    "WAITING_STATUSES", "Alerts", "DaySummary", "QueuedPatient", "Queues",
    "SessionQueue", "Totals", "alerts", "day_summary",
    "pending_cutoff",
    "prescriptions_waiting_condition", "session_queues", "sessions_running_condition",
    "sessions_today_condition", "totals",
    "BoardBed", "BoardWard", "Occupancy", "bed_board", "occupancy",
]

#: Appointment statuses of patients not yet seen, in queue order.
WAITING_STATUSES = (AppointmentStatus.pending, AppointmentStatus.confirmed, AppointmentStatus.checked_in)
#: Prescription statuses still waiting for the pharmacy.
WAITING_PRESCRIPTIONS = (PrescriptionStatus.issued, PrescriptionStatus.partially_dispensed)


def _int(value) -> int:
    return int(value or 0)


# -- conditions shared with the admin list filters -----------------------------------------
def sessions_today_condition(day: date) -> ColumnElement[bool]:
    """Clinic sessions of local ``day`` that are not cancelled."""
    return and_(ClinicSession.session_date == day, ClinicSession.status != ClinicSessionStatus.cancelled)


def sessions_running_condition(day: date, now: time) -> ColumnElement[bool]:
    """Clinic sessions of ``day``, not cancelled, that have started by ``now`` and not ended."""
    return and_(sessions_today_condition(day), ClinicSession.start_time <= now, ClinicSession.end_time > now)


def prescriptions_waiting_condition() -> ColumnElement[bool]:
    """Prescription rows issued or partially dispensed."""
    return Prescription.status.in_(WAITING_PRESCRIPTIONS)


def pending_cutoff(now: datetime) -> datetime:
    """The booking time before which a pending appointment is overdue.

    Args:
        now (datetime): aware current time.

    Returns:
        datetime: ``now`` minus 24 hours, in UTC, truncated to the second (so a link to
        the filtered list can carry exactly the same instant).
    """
    return (now.astimezone(UTC) - timedelta(days=1)).replace(microsecond=0)


# -- dashboard ----------------------------------------------------------------------------
@dataclass
class DaySummary:
    """One day at a glance.

    Attributes:
        day (date): the hospital-local day.
        sessions (int): clinic sessions of the day, not cancelled.
        sessions_running (int | None): of those, running at ``now``; None when no time given.
        by_status (dict[str, int]): appointments of the day per status value (every
            status present, zero when none).
    """

    day: date
    sessions: int
    sessions_running: int | None
    by_status: dict[str, int]

    @property
    def appointments(self) -> int:
        """All appointments of the day, cancelled included (int)."""
        return sum(self.by_status.values())


def day_summary(db: Session, *, day: date, now: time | None = None, doctor_id: int | None = None) -> DaySummary:
    """Count the sessions and the appointments per status of one day.

    Args:
        db (Session): database session.
        day (date): hospital-local day.
        now (time | None): local wall-clock time, to count running sessions; None to skip.
        doctor_id (int | None): only this doctor's sessions and appointments.

    Returns:
        DaySummary: the counts.
    """
    running = (
        func.sum(case((and_(ClinicSession.start_time <= now, ClinicSession.end_time > now), 1), else_=0))
        if now is not None else literal_column("NULL")
    )
    stmt = select(func.count(), running).where(sessions_today_condition(day))
    if doctor_id is not None:
        stmt = stmt.where(ClinicSession.doctor_id == doctor_id)
    n_sessions, n_running = db.execute(stmt).one()
    by_status = {s.value: 0 for s in AppointmentStatus}
    astmt = select(Appointment.status, func.count()).where(Appointment.session_date == day)
    if doctor_id is not None:
        astmt = astmt.where(Appointment.doctor_id == doctor_id)
    for status, n in db.execute(astmt.group_by(Appointment.status)):
        by_status[AppointmentStatus(status).value] = int(n)
    return DaySummary(day, _int(n_sessions), None if now is None else _int(n_running), by_status)


@dataclass
class QueuedPatient:
    """A patient waiting in a session's queue.

    Attributes:
        appointment_id (int): the appointment.
        queue_number (int): place in the queue.
        patient_name (str): full name.
        mrn (str | None): medical record number.
        status (str): pending, confirmed or checked_in.
    """

    appointment_id: int
    queue_number: int
    patient_name: str
    mrn: str | None
    status: str


@dataclass
class SessionQueue:
    """One clinic session of the day with the next patients to be seen.

    Attributes:
        clinic_session_id (int): the session.
        start_time (time): local start.
        end_time (time): local end.
        doctor_name (str): e.g. ``Chief Physician Wang Wei``.
        department_name (str): the department.
        booked (int): places booked (active appointments).
        capacity (int): places offered.
        waiting (int): patients not yet seen (pending, confirmed, checked in).
        next_patients (list[QueuedPatient]): the first of them in queue order.
    """

    clinic_session_id: int
    start_time: time
    end_time: time
    doctor_name: str
    department_name: str
    booked: int
    capacity: int
    waiting: int = 0
    next_patients: list[QueuedPatient] = field(default_factory=list)


@dataclass
class Queues:
    """The sessions shown on the dashboard and how many there are in all.

    Attributes:
        sessions (list[SessionQueue]): at most ``max_sessions``, by start time.
        total_sessions (int): all matching sessions of the day.
    """

    sessions: list[SessionQueue]
    total_sessions: int


def session_queues(
    db: Session,
    *,
    day: date,
    doctor_id: int | None = None,
    department_id: int | None = None,
    max_sessions: int = 20,
    per_session: int = 5,
) -> Queues:
    """The day's sessions (not cancelled) with their next waiting patients.

    Args:
        db (Session): database session.
        day (date): hospital-local day.
        doctor_id (int | None): only this doctor's sessions.
        department_id (int | None): only this department's sessions.
        max_sessions (int): most sessions returned (ordered by start, department, doctor).
        per_session (int): most patients listed per session (queue order).

    Returns:
        Queues: the sessions and the total number of matching sessions.
    """
    where = [sessions_today_condition(day)]
    if doctor_id is not None:
        where.append(ClinicSession.doctor_id == doctor_id)
    if department_id is not None:
        where.append(ClinicSession.department_id == department_id)
    total = _int(db.scalar(select(func.count()).select_from(ClinicSession).where(*where)))
    rows = db.execute(
        select(ClinicSession.id, ClinicSession.start_time, ClinicSession.end_time, ClinicSession.booked_count, ClinicSession.capacity,
               Doctor.title, Doctor.full_name, Department.name)
        .join(Doctor, Doctor.id == ClinicSession.doctor_id)
        .join(Department, Department.id == ClinicSession.department_id)
        .where(*where)
        .order_by(ClinicSession.start_time, Department.name, Doctor.full_name, ClinicSession.id)
        .limit(max_sessions)
    ).all()
    queues = {
        r.id: SessionQueue(r.id, r.start_time, r.end_time, doctor_name(r.title, r.full_name), r.name,
                           int(r.booked_count), int(r.capacity))
        for r in rows
    }
    if not queues:
        return Queues([], total)
    waiting = (Appointment.clinic_session_id.in_(list(queues)), Appointment.status.in_(WAITING_STATUSES))
    for sid, n in db.execute(
        select(Appointment.clinic_session_id, func.count()).where(*waiting).group_by(Appointment.clinic_session_id)
    ):
        queues[sid].waiting = int(n)
    ranked = (
        select(
            Appointment.id, Appointment.clinic_session_id, Appointment.queue_number, Appointment.status,
            Appointment.patient_id,
            func.row_number().over(partition_by=Appointment.clinic_session_id, order_by=Appointment.queue_number).label("rn"),
        )
        .where(*waiting)
        .subquery()
    )
    for r in db.execute(
        select(ranked.c.id, ranked.c.clinic_session_id, ranked.c.queue_number, ranked.c.status,
               Patient.full_name, Patient.medical_record_number)
        .join(Patient, Patient.id == ranked.c.patient_id)
        .where(ranked.c.rn <= per_session)
        .order_by(ranked.c.clinic_session_id, ranked.c.queue_number)
    ):
        queues[r.clinic_session_id].next_patients.append(
            QueuedPatient(r.id, r.queue_number, r.full_name, r.medical_record_number, AppointmentStatus(r.status).value)
        )
    return Queues(list(queues.values()), total)


@dataclass
class Alerts:
    """Things that need someone's attention; each count matches a filtered admin list.

    Attributes:
        pending_cutoff (datetime): aware UTC instant; pending bookings made before it are overdue.
        pending_overdue (int): pending appointments booked before ``pending_cutoff``.
        prescriptions_waiting (int): prescriptions issued or partially dispensed.
        below_reorder (int | None): medicines below their reorder level (None: not computed).
        expiring_soon (int | None): active batches expiring within the window (``stock_terms``).
        expired_active (int | None): active batches with stock already past expiry.
    """

    pending_cutoff: datetime
    pending_overdue: int
    prescriptions_waiting: int
    below_reorder: int | None = None
    expiring_soon: int | None = None
    expired_active: int | None = None


def alerts(
    db: Session, *, now: datetime, today: date, doctor_id: int | None = None, stock: bool = True
) -> Alerts:
    """Count the dashboard's alerts.

    Args:
        db (Session): database session.
        now (datetime): aware current time (for "pending older than a day").
        today (date): hospital-local date (for expiry and usable stock).
        doctor_id (int | None): count only this doctor's overdue pending bookings.
        stock (bool): also count the three stock alerts.

    Returns:
        Alerts: the counts.
    """
    cutoff = pending_cutoff(now)
    pending = select(func.count()).select_from(Appointment).where(
        Appointment.status == AppointmentStatus.pending, Appointment.booked_at < cutoff
    )
    if doctor_id is not None:
        pending = pending.where(Appointment.doctor_id == doctor_id)
    result = Alerts(
        pending_cutoff=cutoff,
        pending_overdue=_int(db.scalar(pending)),
        prescriptions_waiting=_int(db.scalar(
            select(func.count()).select_from(Prescription).where(prescriptions_waiting_condition())
        )),
    )
    if stock:
        result.below_reorder = _int(db.scalar(
            select(func.count()).select_from(Medicine).where(stock_terms.medicine_below_reorder_level(today))
        ))
        result.expiring_soon = _int(db.scalar(
            select(func.count()).select_from(StockBatch).where(stock_terms.batch_expiring_within(today))
        ))
        result.expired_active = _int(db.scalar(
            select(func.count()).select_from(StockBatch).where(stock_terms.batch_expired_but_active(today))
        ))
    return result


@dataclass
class Totals:
    """How many rows the main lists hold (each figure matches its unfiltered list).

    Attributes:
        patients (int), doctors (int), departments (int), appointments (int),
        clinic_sessions (int): row counts.
    """

    patients: int
    doctors: int
    departments: int
    appointments: int
    clinic_sessions: int


def totals(db: Session) -> Totals:
    """Count patients, doctors, departments, appointments and clinic sessions (one query)."""
    models = (Patient, Doctor, Department, Appointment, ClinicSession)
    row = db.execute(
        select(*(select(func.count()).select_from(m).scalar_subquery() for m in models))
    ).one()
    return Totals(*(int(n) for n in row))


# -- inpatients -------------------------------------------------------------------------------


@dataclass
class Occupancy:
    """The hospital's beds now, by status, and the admissions waiting for a bed.

    Attributes:
        by_status (dict[str, int]): bed status value -> beds (every status present, 0 included).
        awaiting_bed (int): admissions requested and not yet admitted.
    """

    by_status: dict[str, int]
    awaiting_bed: int = 0

    @property
    def in_service(self) -> int:
        """Beds that are not out of service."""
        return sum(n for s, n in self.by_status.items() if s != BedStatus.out_of_service.value)

    @property
    def percent(self) -> int:
        """Occupied beds / beds in service, whole percent (0 without beds)."""
        return round(100 * self.by_status[BedStatus.occupied.value] / self.in_service) if self.in_service else 0


def occupancy(db: Session) -> Occupancy:
    """Count the beds per status and the admissions awaiting a bed (two small queries)."""
    counts = {s.value: 0 for s in BedStatus}
    for status, n in db.execute(select(Bed.status, func.count()).group_by(Bed.status)):
        counts[BedStatus(status).value] = int(n)
    waiting = db.scalar(select(func.count()).where(Admission.status == AdmissionStatus.requested))
    return Occupancy(counts, int(waiting or 0))


@dataclass
class BoardBed:
    """One bed on the bed board.

    Attributes:
        id (int), code (str), room (str): the bed and its room number.
        status (str): the bed's status value.
        admission_id (int | None): the admission holding it (admitted or discharge ordered).
        admission_status (str | None): that admission's status value.
        patient (str | None): the patient's name and MRN.
        since (datetime | None): when the patient was admitted (aware UTC).
    """

    id: int
    code: str
    room: str
    status: str
    admission_id: int | None = None
    admission_status: str | None = None
    patient: str | None = None
    since: datetime | None = None


@dataclass
class BoardWard:
    """One ward on the bed board, with its beds and their counts.

    Attributes:
        id (int), name (str), sex_policy (str), floor (str), department (str).
        beds (list[BoardBed]): by room, then code.
    """

    id: int
    name: str
    sex_policy: str
    floor: str
    department: str
    beds: list[BoardBed] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Beds of this ward in ``status`` (a bed status value)."""
        return sum(1 for b in self.beds if b.status == status)


def bed_board(db: Session) -> list[BoardWard]:
    """Every active ward with its beds, their status and the patient holding each (two queries).

    Returns:
        list[BoardWard]: by ward name.
    """
    wards: dict[int, BoardWard] = {}
    rows = db.execute(
        select(Ward.id, Ward.name, Ward.sex_policy, Ward.floor, Department.name.label("department"),
               Bed.id.label("bed_id"), Bed.code, Room.number, Bed.status)
        .join(Department, Department.id == Ward.department_id)
        .outerjoin(Room, Room.ward_id == Ward.id).outerjoin(Bed, Bed.room_id == Room.id)
        .where(Ward.is_active.is_(True)).order_by(Ward.name, Room.number, Bed.code)
    ).all()
    beds: dict[int, BoardBed] = {}
    for r in rows:
        ward = wards.setdefault(r.id, BoardWard(r.id, r.name, SexPolicy(r.sex_policy).value, r.floor, r.department))
        if r.bed_id is not None:
            bed = BoardBed(r.bed_id, r.code, r.number, BedStatus(r.status).value)
            ward.beds.append(bed)
            beds[bed.id] = bed
    holders = db.execute(
        select(Admission.id, Admission.bed_id, Admission.status, Admission.admitted_at, Patient.full_name,
               Patient.medical_record_number)
        .join(Patient, Patient.id == Admission.patient_id).where(Admission.bed_marker == 1)
    ).all()
    for h in holders:
        bed = beds.get(h.bed_id)
        if bed is not None:
            bed.admission_id, bed.admission_status = h.id, AdmissionStatus(h.status).value
            bed.patient = f"{h.full_name} ({h.medical_record_number or 'new'})"
            bed.since = h.admitted_at
    return list(wards.values())


@dataclass
class WaitingAdmission:
    """A requested admission waiting for a bed (the bed board's "Waiting for a bed" list).

    Attributes:
        id (int): the admission.
        patient (str): the patient's name and MRN.
        department (str): the admitting department.
        reason (str), diagnosis_code (str | None): why (ICD-10 category).
        requested_at (datetime): when it was requested (aware UTC).
        reserved_bed (str | None): the code of the bed reserved for it, if any.
    """

    id: int
    patient: str
    department: str
    reason: str
    diagnosis_code: str | None
    requested_at: datetime
    reserved_bed: str | None


def waiting_for_a_bed(db: Session) -> list[WaitingAdmission]:
    """Every requested admission, oldest request first, with the bed reserved for it.

    Returns:
        list[WaitingAdmission]: by request time, then id.
    """
    rows = db.execute(
        select(Admission.id, Admission.reason, Admission.diagnosis_code, Admission.requested_at,
               Patient.full_name, Patient.medical_record_number, Department.name.label("department"),
               Bed.code.label("bed_code"))
        .join(Patient, Patient.id == Admission.patient_id).join(Department, Department.id == Admission.department_id)
        .outerjoin(Bed, Bed.id == Admission.bed_id)
        .where(Admission.status == AdmissionStatus.requested).order_by(Admission.requested_at, Admission.id)
    ).all()
    return [WaitingAdmission(r.id, f"{r.full_name} ({r.medical_record_number or 'new'})", r.department, r.reason,
                             r.diagnosis_code, r.requested_at, r.bed_code) for r in rows]
