"""The database's invariants, checked all at once: ``check_invariants`` and ``python main.py check``.

The services keep these rules with conditional UPDATEs and row locks, one transaction per
change; this module only reads, and says which rows break which rule. It is the referee
of the fault tests (workers killed in the middle of a booking or a dispense, a long mixed
load) and can be run on a live database: on an engine it reads one consistent snapshot
(REPEATABLE READ on MySQL/MariaDB, one read transaction on SQLite).

Rules (names as in :data:`RULES`):

* Clinic sessions: ``booked_count`` equals the session's appointments in an active status
  (:data:`models.ACTIVE_STATUSES`: every status but cancelled; a no-show used its place),
  ``0 <= booked_count <= capacity``, queue numbers are unique in a session and between 1
  and ``last_queue_number``, an appointment holds ``active_marker = 1`` exactly while its
  status is active, and it carries its session's doctor, department and date.
* Stock: every batch's ``quantity_on_hand`` equals the sum of its movements and the newest
  movement's balance (:func:`portal.services.stock.check_stock_ledger`), and every
  movement's ``balance_after`` is the running sum of the batch's movements up to it, in
  ledger order (perpetual inventory).
* Prescriptions: a line's ``quantity_dispensed`` equals the units its ``dispense``
  movements took, and the prescription's status agrees with its lines (``issued`` and
  ``cancelled``: nothing dispensed; ``partially_dispensed``: something dispensed and
  something owed; ``dispensed``: nothing owed).
* Audit ("every change audited"), for every row written after the demo seed (the seed
  loads history in bulk and records one ``seed`` event with its row counts; it writes
  ids 1..count, so a row with a higher id was written by the portal):

  - every appointment has its booking event (``book``, or ``create`` from the admin),
    and the newest of its status events (book, confirm, check_in, complete, cancel,
    no_show) is the one that led to its current status;
  - every patient has its registration event (``register`` or ``create``);
  - every stock movement is named, in ``changes["movement_ids"]``, by exactly one audit
    event of the change that wrote it (``receive``, ``adjust`` or ``expire`` of its batch,
    ``dispense`` of its prescription), and every movement an event names exists.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models import (
    ACTIVE_ADMISSION_STATUSES,
    ACTIVE_STATUSES,
    BED_HOLDING_STATUSES,
    Admission,
    AdmissionStatus,
    Bed,
    BedStatus,
    Appointment,
    AppointmentStatus,
    AuditEvent,
    ClinicSession,
    MovementKind,
    Patient,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    StockMovement,
)
from portal.core.vocabulary import AuditAction, Entity
from portal.services.stock import check_stock_ledger

#: Rule name -> what it requires (the report lists them).
RULES: dict[str, str] = {
    "booked_count": "a session's booked_count equals its appointments in an active status",
    "capacity": "0 <= booked_count <= capacity",
    "queue_number": "queue numbers are unique in a session and between 1 and last_queue_number",
    "active_marker": "active_marker is 1 exactly while the appointment's status is active",
    "clinic_session_copy": "an appointment carries its session's doctor, department and date",
    "stock_ledger": "a batch's quantity on hand equals the sum of its movements and the newest balance",
    "ledger_chain": "each movement's balance_after is the running sum of its batch's movements",
    "dispensed_units": "a prescription line's quantity_dispensed equals the units its dispense movements took",
    "prescription_status": "a prescription's status agrees with what its lines have received",
    "audit_booking": "every appointment has its booking audit event",
    "audit_status": "an appointment's newest status audit event led to its current status",
    "audit_patient": "every patient has its registration audit event",
    "audit_movement": "every stock movement is named by exactly one audit event of its change",
    "bed_occupied": "every occupied bed holds exactly one admitted (or discharge-ordered) admission, and every such admission's bed is occupied",
    "bed_not_holding": "no free, cleaning or out-of-service bed holds an active admission; a reserved bed is held by exactly one requested admission",
    "audit_admission": "every admission state change (request, admit, discharge order, discharge, cancel) has its audit event",
}

#: Audit actions that move an appointment, and the status each leads to.
STATUS_ACTIONS: dict[AuditAction, AppointmentStatus] = {
    AuditAction.book: AppointmentStatus.pending,
    AuditAction.create: AppointmentStatus.pending,
    AuditAction.confirm: AppointmentStatus.confirmed,
    AuditAction.check_in: AppointmentStatus.checked_in,
    AuditAction.complete: AppointmentStatus.completed,
    AuditAction.cancel: AppointmentStatus.cancelled,
    AuditAction.no_show: AppointmentStatus.no_show,
}
#: Audit actions that write stock movements, and the entity they are recorded on.
MOVEMENT_ACTIONS: dict[AuditAction, Entity] = {
    AuditAction.receive: Entity.stock_batch,
    AuditAction.adjust: Entity.stock_batch,
    AuditAction.expire: Entity.stock_batch,
    AuditAction.dispense: Entity.prescription,
}
#: The audit actions an admission in each status must have had (its state changes).
ADMISSION_ACTIONS: dict[AdmissionStatus, tuple[AuditAction, ...]] = {
    AdmissionStatus.requested: (AuditAction.request_admission,),
    AdmissionStatus.admitted: (AuditAction.request_admission, AuditAction.admit),
    AdmissionStatus.discharge_ordered: (AuditAction.request_admission, AuditAction.admit, AuditAction.order_discharge),
    AdmissionStatus.discharged: (AuditAction.request_admission, AuditAction.admit, AuditAction.order_discharge,
                                 AuditAction.discharge),
    AdmissionStatus.cancelled: (AuditAction.request_admission, AuditAction.cancel),
}
#: Audit actions that register a patient.
PATIENT_ACTIONS = (AuditAction.register, AuditAction.create)
#: At most this many violations of one rule are listed; the rest are counted.
LIST_LIMIT = 200


@dataclass(frozen=True)
class Violation:
    """One row that breaks one rule.

    Attributes:
        rule (str): a key of :data:`RULES`.
        subject (str): the row, e.g. ``clinic session #12`` or ``batch #7 (lot L123)``.
        detail (str): what is wrong, with the numbers.
    """

    rule: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail} [{self.rule}]"


@dataclass
class IntegrityReport:
    """What :func:`check_invariants_report` checked and found.

    Attributes:
        violations (list[Violation]): every violation listed (at most
            :data:`LIST_LIMIT` per rule), by rule then row.
        omitted (dict[str, int]): per rule, violations found beyond the listed ones.
        counts (dict[str, int]): rows examined per table.
        seeded (dict[str, int]): per table, the rows loaded by the demo seed (ids
            1..n), which the audit rules skip.
        seconds (float): wall time of the check.
    """

    violations: list[Violation] = field(default_factory=list)
    omitted: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seeded: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.violations

    def by_rule(self) -> dict[str, int]:
        """Number of violations per broken rule (listed and omitted together)."""
        out = Counter(v.rule for v in self.violations)
        for rule, n in self.omitted.items():
            out[rule] += n
        return dict(out)


def check_invariants(target: Engine | Session) -> list[Violation]:
    """Check every rule of :data:`RULES`; return the violations (empty when all hold).

    Args:
        target (Engine | Session): an engine (the check reads one consistent snapshot in
            a read-only transaction of its own) or a session (the check reads in it, as
            it is; nothing is written either way).

    Returns:
        list[Violation]: readable violations, by rule then row; at most
        :data:`LIST_LIMIT` per rule (:func:`check_invariants_report` counts the rest).
    """
    return check_invariants_report(target).violations


def check_invariants_report(target: Engine | Session) -> IntegrityReport:
    """Like :func:`check_invariants`, with what was examined and how long it took.

    Args:
        target (Engine | Session): see :func:`check_invariants`.

    Returns:
        IntegrityReport: violations, rows examined per table, seeded rows, seconds.
    """
    started = time.perf_counter()
    report = IntegrityReport()
    with _snapshot(target) as db:
        report.seeded = seeded_counts(db)
        for rule, found in _checks(db, report):
            for n, violation in enumerate(found):
                if n < LIST_LIMIT:
                    report.violations.append(violation)
                else:
                    report.omitted[rule] = report.omitted.get(rule, 0) + 1
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _snapshot(target: Engine | Session) -> Iterator[Session]:
    if isinstance(target, Session):
        yield target
        return
    with target.connect() as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        db = Session(bind=conn, autoflush=False)
        try:
            yield db
        finally:
            db.close()
            conn.rollback()


def seeded_counts(db: Session) -> dict[str, int]:
    """Rows per table that the demo seed loaded (from its ``seed`` audit event).

    Args:
        db (Session): any session.

    Returns:
        dict[str, int]: table name -> row count written by the seed (ids 1..count);
        empty when the database was not seeded.
    """
    changes = db.scalar(
        select(AuditEvent.changes)
        .where(AuditEvent.action == AuditAction.seed, AuditEvent.entity == Entity.hospital)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if not isinstance(changes, dict):
        return {}
    return {k: int(v) for k, v in changes.items() if isinstance(v, int) and not isinstance(v, bool)}


def _checks(db: Session, report: IntegrityReport):
    yield "booked_count", _booked_count(db, report)
    yield "capacity", _capacity(db)
    yield "queue_number", _queue_numbers(db)
    yield "active_marker", _active_marker(db)
    yield "clinic_session_copy", _clinic_session_copy(db)
    yield "stock_ledger", _stock_ledger(db)
    yield "ledger_chain", _ledger_chain(db)
    yield "dispensed_units", _dispensed_units(db)
    yield "prescription_status", _prescription_status(db)
    booking, status = _audit_appointments(db, report)  # both rules from one pass
    yield "audit_booking", booking
    yield "audit_status", status
    yield "audit_patient", _audit_patients(db, report)
    yield "audit_movement", _audit_movements(db, report)
    yield "bed_occupied", _bed_occupied(db, report)
    yield "bed_not_holding", _bed_not_holding(db)
    yield "audit_admission", _audit_admissions(db, report)


# -- clinic sessions -----------------------------------------------------------------


def _booked_count(db: Session, report: IntegrityReport) -> list[Violation]:
    active = (
        select(Appointment.clinic_session_id, func.count().label("n"))
        .where(Appointment.status.in_(ACTIVE_STATUSES))
        .group_by(Appointment.clinic_session_id)
        .subquery()
    )
    n = func.coalesce(active.c.n, 0)
    report.counts["clinic_session"] = db.scalar(select(func.count()).select_from(ClinicSession)) or 0
    report.counts["appointment"] = db.scalar(select(func.count()).select_from(Appointment)) or 0
    rows = db.execute(
        select(ClinicSession.id, ClinicSession.booked_count, n.label("n"))
        .outerjoin(active, active.c.clinic_session_id == ClinicSession.id)
        .where(ClinicSession.booked_count != n)
        .order_by(ClinicSession.id)
    ).all()
    return [
        Violation("booked_count", f"clinic session #{r.id}",
                  f"booked_count is {r.booked_count} but {r.n} appointment(s) are active")
        for r in rows
    ]


def _capacity(db: Session) -> list[Violation]:
    rows = db.execute(
        select(ClinicSession.id, ClinicSession.booked_count, ClinicSession.capacity)
        .where((ClinicSession.booked_count < 0) | (ClinicSession.booked_count > ClinicSession.capacity))
        .order_by(ClinicSession.id)
    ).all()
    return [
        Violation("capacity", f"clinic session #{r.id}", f"booked_count {r.booked_count} outside 0..capacity {r.capacity}")
        for r in rows
    ]


def _queue_numbers(db: Session) -> list[Violation]:
    out = []
    duplicates = db.execute(
        select(Appointment.clinic_session_id, Appointment.queue_number, func.count().label("n"))
        .group_by(Appointment.clinic_session_id, Appointment.queue_number)
        .having(func.count() > 1)
        .order_by(Appointment.clinic_session_id, Appointment.queue_number)
    ).all()
    out += [
        Violation("queue_number", f"clinic session #{r.clinic_session_id}", f"queue number {r.queue_number} is held by {r.n} appointments")
        for r in duplicates
    ]
    outside = db.execute(
        select(Appointment.id, Appointment.reference, Appointment.queue_number, ClinicSession.id.label("sid"),
               ClinicSession.last_queue_number)
        .join(ClinicSession, ClinicSession.id == Appointment.clinic_session_id)
        .where((Appointment.queue_number < 1) | (Appointment.queue_number > ClinicSession.last_queue_number))
        .order_by(Appointment.id)
    ).all()
    out += [
        Violation("queue_number", f"appointment #{r.id} ({r.reference})",
                  f"queue number {r.queue_number} outside 1..{r.last_queue_number} "
                  f"(last queue number of clinic session #{r.sid})")
        for r in outside
    ]
    return out


def _active_marker(db: Session) -> list[Violation]:
    active = Appointment.status.in_(ACTIVE_STATUSES)
    rows = db.execute(
        select(Appointment.id, Appointment.reference, Appointment.status, Appointment.active_marker)
        .where(
            (active & ((Appointment.active_marker.is_(None)) | (Appointment.active_marker != 1)))
            | (~active & Appointment.active_marker.is_not(None))
        )
        .order_by(Appointment.id)
    ).all()
    return [
        Violation("active_marker", f"appointment #{r.id} ({r.reference})",
                  f"status {r.status.value} with active_marker {r.active_marker}")
        for r in rows
    ]


def _clinic_session_copy(db: Session) -> list[Violation]:
    rows = db.execute(
        select(Appointment.id, Appointment.reference, Appointment.doctor_id, Appointment.department_id,
               Appointment.session_date, ClinicSession.id.label("sid"), ClinicSession.doctor_id.label("s_doctor"),
               ClinicSession.department_id.label("s_department"), ClinicSession.session_date.label("s_date"))
        .join(ClinicSession, ClinicSession.id == Appointment.clinic_session_id)
        .where(
            (Appointment.doctor_id != ClinicSession.doctor_id)
            | (Appointment.department_id != ClinicSession.department_id)
            | (Appointment.session_date != ClinicSession.session_date)
        )
        .order_by(Appointment.id)
    ).all()
    out = []
    for r in rows:
        diffs = [
            f"{what} {mine} but the session's is {theirs}"
            for what, mine, theirs in (
                ("doctor", r.doctor_id, r.s_doctor), ("department", r.department_id, r.s_department),
                ("date", r.session_date, r.s_date),
            )
            if mine != theirs
        ]
        out.append(Violation("clinic_session_copy", f"appointment #{r.id} ({r.reference}) of clinic session #{r.sid}",
                             "; ".join(diffs)))
    return out


# -- stock and prescriptions ------------------------------------------------------------


def _stock_ledger(db: Session) -> list[Violation]:
    return [
        Violation("stock_ledger", f"batch #{p.batch_id} (lot {p.lot_number})", "; ".join(p.problems))
        for p in check_stock_ledger(db)
    ]


def _ledger_chain(db: Session) -> list[Violation]:
    m = StockMovement
    running = (
        select(
            m.id, m.batch_id, m.quantity, m.balance_after,
            func.sum(m.quantity).over(partition_by=m.batch_id, order_by=m.id).label("running"),
        ).subquery()
    )
    rows = db.execute(
        select(running).where(running.c.running != running.c.balance_after).order_by(running.c.batch_id, running.c.id)
    ).all()
    return [
        Violation("ledger_chain", f"movement #{r.id} of batch #{r.batch_id}",
                  f"balance_after {r.balance_after} but the batch's movements up to it add up to {r.running}")
        for r in rows
    ]


def _dispensed_units(db: Session) -> list[Violation]:
    m = StockMovement
    taken = (
        select(m.prescription_item_id.label("item_id"), func.sum(-m.quantity).label("units"))
        .where(m.kind == MovementKind.dispense, m.prescription_item_id.is_not(None))
        .group_by(m.prescription_item_id)
        .subquery()
    )
    units = func.coalesce(taken.c.units, 0)
    item = PrescriptionItem
    rows = db.execute(
        select(item.id, item.prescription_id, item.quantity, item.quantity_dispensed, units.label("units"))
        .outerjoin(taken, taken.c.item_id == item.id)
        .where((item.quantity_dispensed != units) | (item.quantity_dispensed < 0)
               | (item.quantity_dispensed > item.quantity))
        .order_by(item.id)
    ).all()
    out = []
    for r in rows:
        detail = f"quantity_dispensed {r.quantity_dispensed} of {r.quantity}"
        if r.quantity_dispensed != r.units:
            detail += f" but its dispense movements took {r.units}"
        else:
            detail += " is outside 0..quantity"
        out.append(Violation("dispensed_units", f"prescription line #{r.id} of prescription #{r.prescription_id}",
                             detail))
    return out


def _prescription_status(db: Session) -> list[Violation]:
    item = PrescriptionItem
    per_rx = (
        select(
            item.prescription_id,
            func.sum(item.quantity_dispensed).label("given"),
            func.sum(case((item.quantity > item.quantity_dispensed, 1), else_=0)).label("owing"),
        )
        .group_by(item.prescription_id)
        .subquery()
    )
    given = func.coalesce(per_rx.c.given, 0)
    owing = func.coalesce(per_rx.c.owing, 0)
    status = Prescription.status
    broken = (
        (status.in_((PrescriptionStatus.issued, PrescriptionStatus.cancelled)) & (given != 0))
        | ((status == PrescriptionStatus.partially_dispensed) & ((given == 0) | (owing == 0)))
        | ((status == PrescriptionStatus.dispensed) & (owing != 0))
    )
    rows = db.execute(
        select(Prescription.id, Prescription.number, status, given.label("given"), owing.label("owing"))
        .outerjoin(per_rx, per_rx.c.prescription_id == Prescription.id)
        .where(broken)
        .order_by(Prescription.id)
    ).all()
    return [
        Violation("prescription_status", f"prescription #{r.id} ({r.number})",
                  f"status {r.status.value} but {r.given} unit(s) dispensed and {r.owing} line(s) still owed")
        for r in rows
    ]


# -- audit -------------------------------------------------------------------------------


def _audit_appointments(db: Session, report: IntegrityReport) -> tuple[list[Violation], list[Violation]]:
    first = report.seeded.get("appointment", 0)
    appointments = db.execute(
        select(Appointment.id, Appointment.reference, Appointment.status)
        .where(Appointment.id > first).order_by(Appointment.id)
    ).all()
    if not appointments:
        return [], []
    booked: set[int] = set()
    newest: dict[int, str] = {}
    events = db.execute(
        select(AuditEvent.entity_id, AuditEvent.action)
        .where(AuditEvent.entity == Entity.appointment, AuditEvent.action.in_(tuple(STATUS_ACTIONS)))
        .order_by(AuditEvent.id)
    )
    for entity_id, action in events:
        if entity_id is None or not entity_id.isdigit():
            continue
        key = int(entity_id)
        if action in (AuditAction.book, AuditAction.create):
            booked.add(key)
        newest[key] = action
    missing, wrong = [], []
    for a in appointments:
        subject = f"appointment #{a.id} ({a.reference})"
        if a.id not in booked:
            missing.append(Violation("audit_booking", subject, "no book (or create) audit event"))
        action = newest.get(a.id)
        if action is not None and STATUS_ACTIONS[action] != a.status:
            wrong.append(Violation("audit_status", subject,
                                   f"status {a.status.value} but its newest status event is {action!r}"))
    return missing, wrong


def _audit_patients(db: Session, report: IntegrityReport) -> list[Violation]:
    first = report.seeded.get("patient", 0)
    patients = db.execute(
        select(Patient.id, Patient.medical_record_number).where(Patient.id > first).order_by(Patient.id)
    ).all()
    report.counts["patient"] = db.scalar(select(func.count()).select_from(Patient)) or 0
    if not patients:
        return []
    audited = {
        int(e) for e in db.scalars(
            select(AuditEvent.entity_id)
            .where(AuditEvent.entity == Entity.patient, AuditEvent.action.in_(PATIENT_ACTIONS))
        )
        if e and e.isdigit()
    }
    return [
        Violation("audit_patient", f"patient #{p.id} ({p.medical_record_number})",
                  "no register (or create) audit event")
        for p in patients if p.id not in audited
    ]


def _audit_movements(db: Session, report: IntegrityReport) -> list[Violation]:
    first = report.seeded.get("stock_movement", 0)
    report.counts["stock_movement"] = db.scalar(select(func.count()).select_from(StockMovement)) or 0
    report.counts["audit_event"] = db.scalar(select(func.count()).select_from(AuditEvent)) or 0
    movements = {
        r.id: r for r in db.execute(
            select(StockMovement.id, StockMovement.batch_id, StockMovement.kind,
                   PrescriptionItem.prescription_id)
            .outerjoin(PrescriptionItem, PrescriptionItem.id == StockMovement.prescription_item_id)
            .where(StockMovement.id > first)
        )
    }
    named: dict[int, list[int]] = defaultdict(list)  # movement id -> audit event ids naming it
    out: list[Violation] = []
    events = db.execute(
        select(AuditEvent.id, AuditEvent.action, AuditEvent.entity, AuditEvent.entity_id, AuditEvent.changes)
        .where(AuditEvent.action.in_(tuple(MOVEMENT_ACTIONS)), AuditEvent.entity.in_(set(MOVEMENT_ACTIONS.values())))
        .order_by(AuditEvent.id)
    )
    for event in events:
        ids = (event.changes or {}).get("movement_ids") if isinstance(event.changes, dict) else None
        for movement_id in ids or ():
            if not isinstance(movement_id, int) or movement_id <= first:
                continue
            named[movement_id].append(event.id)
            movement = movements.get(movement_id)
            if movement is None:
                out.append(Violation("audit_movement", f"audit event #{event.id} ({event.action})",
                                     f"names movement #{movement_id}, which does not exist"))
                continue
            owner = movement.batch_id if event.entity == Entity.stock_batch else movement.prescription_id
            if event.entity_id != str(owner):
                out.append(Violation("audit_movement", f"movement #{movement_id} of batch #{movement.batch_id}",
                                     f"named by audit event #{event.id} ({event.action} of {event.entity} "
                                     f"#{event.entity_id}), not of its own {event.entity}"))
    for movement_id in sorted(movements):
        movement = movements[movement_id]
        subject = f"movement #{movement_id} ({movement.kind.value}) of batch #{movement.batch_id}"
        events_naming = named.get(movement_id, [])
        if not events_naming:
            out.append(Violation("audit_movement", subject, "no audit event names it"))
        elif len(events_naming) > 1:
            out.append(Violation("audit_movement", subject,
                                 f"named by {len(events_naming)} audit events ({', '.join(map(str, events_naming))})"))
    return out


# -- inpatient beds and admissions ------------------------------------------------------


def _bed_occupied(db: Session, report: IntegrityReport) -> list[Violation]:
    report.counts["bed"] = db.scalar(select(func.count()).select_from(Bed)) or 0
    report.counts["admission"] = db.scalar(select(func.count()).select_from(Admission)) or 0
    holding = Admission.status.in_(BED_HOLDING_STATUSES)
    holders: dict[int, list[int]] = defaultdict(list)
    for admission_id, bed_id in db.execute(
        select(Admission.id, Admission.bed_id).where(holding).order_by(Admission.id)
    ):
        holders[bed_id].append(admission_id)
    out = []
    for bed_id, code in db.execute(select(Bed.id, Bed.code).where(Bed.status == BedStatus.occupied).order_by(Bed.id)):
        found = holders.get(bed_id, [])
        if len(found) != 1:
            held = ", ".join(f"#{i}" for i in found) or "none"
            out.append(Violation("bed_occupied", f"bed #{bed_id} ({code})",
                                 f"occupied but held by {len(found)} admitted admission(s): {held}"))
    rows = db.execute(
        select(Admission.id, Admission.status, Admission.bed_marker, Bed.id.label("bed"), Bed.code, Bed.status.label("bs"))
        .outerjoin(Bed, Bed.id == Admission.bed_id)
        .where(holding & ((Bed.id.is_(None)) | (Bed.status != BedStatus.occupied) | (Admission.bed_marker.is_(None))))
        .order_by(Admission.id)
    ).all()
    for r in rows:
        where = f"bed {r.code} is {BedStatus(r.bs).value}" if r.bed is not None else "it has no bed"
        if r.bed is not None and BedStatus(r.bs) is BedStatus.occupied:
            where = "its bed_marker is not set"
        out.append(Violation("bed_occupied", f"admission #{r.id}", f"{r.status.value} but {where}"))
    return out


def _bed_not_holding(db: Session) -> list[Violation]:
    active = Admission.status.in_(ACTIVE_ADMISSION_STATUSES)
    rows = db.execute(
        select(Bed.id, Bed.code, Bed.status, Admission.id.label("admission"), Admission.status.label("astatus"))
        .join(Admission, Admission.bed_id == Bed.id)
        .where(active, Bed.status.in_((BedStatus.free, BedStatus.cleaning, BedStatus.out_of_service)))
        .order_by(Bed.id, Admission.id)
    ).all()
    out = [Violation("bed_not_holding", f"bed #{r.id} ({r.code})",
                     f"{BedStatus(r.status).value} but admission #{r.admission} ({AdmissionStatus(r.astatus).value}) is on it")
           for r in rows]
    waiting: dict[int, list[int]] = defaultdict(list)
    for admission_id, bed_id in db.execute(
        select(Admission.id, Admission.bed_id).where(Admission.status == AdmissionStatus.requested,
                                                     Admission.bed_id.is_not(None))
    ):
        waiting[bed_id].append(admission_id)
    for bed_id, code in db.execute(select(Bed.id, Bed.code).where(Bed.status == BedStatus.reserved).order_by(Bed.id)):
        found = waiting.pop(bed_id, [])
        if len(found) != 1:
            out.append(Violation("bed_not_holding", f"bed #{bed_id} ({code})",
                                 f"reserved for {len(found)} requested admission(s)"))
    # waiting admissions left over point at a bed that is not reserved: a free, cleaning or
    # out-of-service one is reported above; an occupied one by bed_occupied's holder count.
    for bed_id, found in sorted(waiting.items()):
        if db.scalar(select(Bed.status).where(Bed.id == bed_id)) is BedStatus.occupied:
            out.append(Violation("bed_not_holding", f"bed #{bed_id}",
                                 f"occupied but requested admission(s) {', '.join(f'#{i}' for i in found)} point at it"))
    return out


def _audit_admissions(db: Session, report: IntegrityReport) -> list[Violation]:
    first = report.seeded.get("admission", 0)
    admissions = db.execute(
        select(Admission.id, Admission.status).where(Admission.id > first).order_by(Admission.id)
    ).all()
    if not admissions:
        return []
    done: dict[int, set[str]] = defaultdict(set)
    for entity_id, action in db.execute(
        select(AuditEvent.entity_id, AuditEvent.action).where(AuditEvent.entity == Entity.admission)
    ):
        if entity_id and entity_id.isdigit():
            done[int(entity_id)].add(action)
    out = []
    for a in admissions:
        missing = [act.value for act in ADMISSION_ACTIONS[AdmissionStatus(a.status)] if act not in done[a.id]]
        if missing:
            out.append(Violation("audit_admission", f"admission #{a.id}",
                                 f"{AdmissionStatus(a.status).value} but no {', '.join(missing)} audit event"))
    return out


def format_report(report: IntegrityReport) -> list[str]:
    """The report as printable lines: what was examined, then each violation.

    Args:
        report (IntegrityReport): from :func:`check_invariants_report`.

    Returns:
        list[str]: lines without newlines.
    """
    lines = [f"Checked {len(RULES)} rules in {report.seconds:.1f} s over "
             + ", ".join(f"{n:,} {table} rows" for table, n in sorted(report.counts.items())) + "."]
    if report.seeded:
        lines.append(f"Rows loaded by the demo seed ({sum(report.seeded.values()):,}) are exempt from the audit rules.")
    if report.ok:
        lines.append("No violations: every invariant holds.")
        return lines
    by_rule = report.by_rule()
    lines.append(f"{sum(by_rule.values()):,} violation(s) of {len(by_rule)} rule(s):")
    for rule, n in by_rule.items():
        lines.append(f"  {rule} ({n}): {RULES[rule]}")
    lines.append("")
    for violation in report.violations:
        lines.append(f"  {violation}")
    for rule, n in report.omitted.items():
        lines.append(f"  ... and {n:,} more violation(s) of {rule}")
    return lines
