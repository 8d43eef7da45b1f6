"""Inpatient care: admissions, bed transfers, discharges and the beds' cycle.

Rules (issue 17; the ward practice of the hospital, and the ERPNext report of a bed freed
on the discharge order, marley #1141, which this must not repeat):

* A bed holds at most one admission. A bed is taken with ONE conditional UPDATE
  (``status = 'occupied' WHERE id = ? AND status = 'free'``); its row count says whether
  it was won, so two nurses can never put two patients in one bed, on MariaDB or SQLite.
  The unique key (bed_id, bed_marker) of ``admission`` backs this in the database.
* A patient has at most one active admission (requested, admitted or discharge ordered):
  checked first for a clear message, enforced by the unique key (patient_id, active_marker).
* A ward's sex policy is respected: a male ward takes male patients, a female ward female
  patients (a patient recorded as other/unknown only a mixed ward), a mixed ward anyone.
* Admission: requested -> admitted (to a bed) -> discharge_ordered -> discharged;
  requested -> cancelled. The discharge order does NOT free the bed; the final discharge
  frees it into ``cleaning``; :func:`mark_cleaned` then frees it (cleaning -> free).
  A transfer keeps its history (``bed_transfer``) and sends the old bed to cleaning.
* A final discharge with an undispensed prescription of the patient (issued or partially
  dispensed) needs an explicit reason (``override_reason``), recorded in the audit.
* Every change is a conditional UPDATE on the status it expects, so of two staff members
  acting on one admission or bed at once, one wins and the other is told why.
  The admission row is updated first in every function that moves an admission, so a
  transfer and a discharge of one patient queue on that row instead of deadlocking.

Every function runs in the caller's transaction (``portal.core.db.run_in_transaction``)
and records its AuditEvent there. Money is in fen; times are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    BED_HOLDING_STATUSES,
    Admission,
    AdmissionStatus,
    AdmittedFrom,
    Bed,
    BedStatus,
    BedTransfer,
    Department,
    Doctor,
    Encounter,
    Gender,
    Icd10Code,
    InpatientNote,
    Patient,
    Prescription,
    PrescriptionStatus,
    Room,
    SexPolicy,
    Ward,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import DomainError, InvalidTransition, NotFound, ValidationFailed
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit

S = AdmissionStatus
B = BedStatus
MAX_TEXT = 500
#: Longest note on a bed (``bed.status_note``), characters.
MAX_BED_NOTE = 255

__all__ = [
    "AdmissionConflict", "BedNotAvailable", "DischargeBlocked", "SexPolicyViolation",
    "admit", "admit_patient", "cancel", "discharge", "mark_cleaned", "open_prescriptions",
    "order_discharge", "record_note", "release_reservation", "request_admission", "reserve_bed", "return_to_service",
    "set_out_of_service", "transfer",
]


class BedNotAvailable(DomainError):
    """The bed is not free (occupied, reserved, being cleaned or out of service)."""


class AdmissionConflict(DomainError):
    """The patient already has an active admission."""


class SexPolicyViolation(DomainError):
    """The ward's sex policy does not take this patient."""


class DischargeBlocked(DomainError):
    """Something is still open for the patient (an undispensed prescription); a final
    discharge needs an explicit reason."""


# -- reading helpers ----------------------------------------------------------------------


def _text(value: str | None, *, field: str, what: str, required: bool, limit: int = MAX_TEXT) -> str | None:
    text = " ".join((value or "").split())
    if required and not text:
        raise ValidationFailed(f"Give {what}.", field=field)
    if len(text) > limit:
        raise ValidationFailed(f"Keep {what} under {limit} characters.", field=field)
    return text or None


def get_admission(db: Session, admission_id: int, *, field: str = "admission_id") -> Admission:
    """The admission ``admission_id``, read afresh.

    Raises:
        NotFound: no such admission (``field`` names the argument).
    """
    admission = db.get(Admission, admission_id, populate_existing=True) if admission_id is not None else None
    if admission is None:
        raise NotFound("This admission does not exist.", field=field)
    return admission


def get_bed(db: Session, bed_id: int, *, field: str = "bed_id") -> Bed:
    """The bed ``bed_id``, read afresh.

    Raises:
        NotFound: no such bed (``field`` names the argument).
    """
    if bed_id is None:
        raise ValidationFailed("Choose a bed.", field=field)
    bed = db.get(Bed, bed_id, populate_existing=True)
    if bed is None:
        raise NotFound("This bed does not exist.", field=field)
    return bed


def ward_of_bed(db: Session, bed_id: int) -> Ward:
    """The ward a bed belongs to (through its room)."""
    return db.scalars(select(Ward).join(Room, Room.ward_id == Ward.id).join(Bed, Bed.room_id == Room.id)
                      .where(Bed.id == bed_id)).one()


def _row(db: Session, model, pk, field: str, missing: str):
    """The row ``pk`` of ``model``; NotFound naming ``field`` when there is none (or no id)."""
    row = db.get(model, pk) if pk is not None else None
    if row is None:
        raise NotFound(missing, field=field)
    return row


def _check_sex_policy(ward: Ward, patient: Patient, *, field: str) -> None:
    if ward.sex_policy is SexPolicy.mixed:
        return
    wanted = Gender.male if ward.sex_policy is SexPolicy.male else Gender.female
    if patient.gender is not wanted:
        raise SexPolicyViolation(
            f"{ward.name} takes {ward.sex_policy.value} patients only; {patient.full_name} is recorded "
            f"as {patient.gender.value}.", field=field)


def _occupy(db: Session, bed: Bed, *, field: str, from_status: BedStatus = B.free) -> None:
    """Take a free bed (or the admission's reserved one) with one conditional UPDATE
    (free/reserved -> occupied)."""
    won = db.execute(
        update(Bed).where(Bed.id == bed.id, Bed.status == from_status).values(status=B.occupied, status_note=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        current = db.scalar(select(Bed.status).where(Bed.id == bed.id))
        raise BedNotAvailable(f"Bed {bed.code} is {BedStatus(current).value.replace('_', ' ')}; "
                              "choose a free bed.", field=field)


def _unreserve(db: Session, bed_id: int) -> None:
    """A reserved bed is given back (reserved -> free)."""
    db.execute(update(Bed).where(Bed.id == bed_id, Bed.status == B.reserved)
               .values(status=B.free, status_note=None).execution_options(synchronize_session=False))


def _vacate(db: Session, bed_id: int) -> None:
    """The bed an admission leaves goes to cleaning (occupied -> cleaning)."""
    db.execute(update(Bed).where(Bed.id == bed_id, Bed.status == B.occupied)
               .values(status=B.cleaning).execution_options(synchronize_session=False))


def _move(db: Session, admission: Admission, *, to: AdmissionStatus, allowed_from: tuple[AdmissionStatus, ...],
          values: dict, requested: str) -> None:
    """Move an admission with a conditional UPDATE on the statuses it may come from."""
    if admission.status not in allowed_from:
        raise InvalidTransition(f"Admission #{admission.id}", admission.status.value, requested)
    moved = db.execute(
        update(Admission).where(Admission.id == admission.id, Admission.status.in_(allowed_from))
        .values(status=to, **values).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        current = db.scalar(select(Admission.status).where(Admission.id == admission.id))
        raise InvalidTransition(f"Admission #{admission.id}", AdmissionStatus(current).value, requested)


def open_prescriptions(db: Session, patient_id: int) -> list[str]:
    """Numbers of the patient's prescriptions not yet fully dispensed (issued or partially
    dispensed), oldest first: what blocks a final discharge without a reason."""
    return list(db.scalars(
        select(Prescription.number).where(
            Prescription.patient_id == patient_id,
            Prescription.status.in_((PrescriptionStatus.issued, PrescriptionStatus.partially_dispensed)),
        ).order_by(Prescription.id)
    ))


# -- admissions ---------------------------------------------------------------------------


def request_admission(
    db: Session,
    *,
    patient_id: int,
    doctor_id: int,
    department_id: int,
    reason: str,
    actor: Actor,
    diagnosis_code: str | None = None,
    admitted_from: AdmittedFrom = AdmittedFrom.direct,
    encounter_id: int | None = None,
) -> Admission:
    """Request a patient's admission (no bed yet): a new admission in ``requested``.

    Args:
        db (Session): open transaction.
        patient_id (int): the patient.
        doctor_id (int): the admitting doctor.
        department_id (int): the admitting department.
        reason (str): why (1 to 500 characters).
        actor (Actor): who requests.
        diagnosis_code (str | None): ICD-10 category (``icd10_code.code``), e.g. ``J18``.
        admitted_from (AdmittedFrom): outpatient encounter, emergency or direct.
        encounter_id (int | None): the outpatient encounter that led to it.

    Returns:
        Admission: the new row (status requested).

    Raises:
        NotFound: no such patient, doctor, department, diagnosis code or encounter.
        ValidationFailed: no reason, or too long.
        AdmissionConflict: the patient already has an active admission.
    """
    reason = _text(reason, field="reason", what="the reason for admission", required=True)
    patient = _row(db, Patient, patient_id, "patient_id", "This patient does not exist.")
    _row(db, Doctor, doctor_id, "doctor_id", "This doctor does not exist.")
    _row(db, Department, department_id, "department_id", "This department does not exist.")
    code = (diagnosis_code or "").strip().upper() or None
    if code is not None and db.get(Icd10Code, code) is None:
        raise NotFound(f"{code} is not an ICD-10 code of the catalogue.", field="diagnosis_code")
    if encounter_id is not None and db.get(Encounter, encounter_id) is None:  # optional
        raise NotFound("This encounter does not exist.", field="encounter_id")
    _refuse_second_active(db, patient)
    admission = Admission(
        patient_id=patient_id, doctor_id=doctor_id, department_id=department_id, reason=reason,
        diagnosis_code=code, admitted_from=AdmittedFrom(admitted_from), encounter_id=encounter_id,
        status=S.requested, active_marker=1, requested_at=clock.now(),
    )
    try:
        with db.begin_nested():
            db.add(admission)
            db.flush()
    except IntegrityError:
        raise AdmissionConflict(f"{patient.full_name} already has an active admission.", field="patient_id") from None
    audit.record(db, actor=actor, action=AuditAction.request_admission, entity=Entity.admission,
                 entity_id=admission.id, summary=f"Admission #{admission.id} requested for {patient.full_name}",
                 changes={"patient_id": patient_id, "doctor_id": doctor_id, "department_id": department_id,
                          "diagnosis_code": code, "admitted_from": admission.admitted_from, "status": S.requested})
    return admission


def _refuse_second_active(db: Session, patient: Patient, *, except_id: int | None = None) -> None:
    stmt = select(Admission.id).where(Admission.patient_id == patient.id, Admission.active_marker == 1)
    if except_id is not None:
        stmt = stmt.where(Admission.id != except_id)
    other = db.scalar(stmt)
    if other is not None:
        raise AdmissionConflict(f"{patient.full_name} already has an active admission (#{other}).",
                                field="patient_id")


def admit(db: Session, admission_id: int, *, bed_id: int | None = None, actor: Actor,
          now: datetime | None = None) -> Admission:
    """Admit a requested admission to a bed (requested -> admitted; bed free or reserved for
    it -> occupied).

    Args:
        db (Session): open transaction.
        admission_id (int): a requested admission.
        bed_id (int | None): a free bed of a ward whose sex policy takes the patient, or the
            bed reserved for this admission (the default when it has one). Admitting to
            another bed than the reserved one releases the reservation (reserved -> free).
        actor (Actor): who admits (a ward nurse, usually).
        now (datetime | None): the admission instant (aware); the hospital clock's now by default.

    Returns:
        Admission: the row, admitted, with ``bed_id`` and ``admitted_at``.

    Raises:
        NotFound: no such admission or bed.
        InvalidTransition: the admission is not requested (someone else moved it).
        SexPolicyViolation: the bed's ward does not take the patient's sex.
        BedNotAvailable: the bed is not free (another admission won it).
    """
    admission = get_admission(db, admission_id)
    reserved_id = admission.bed_id if admission.status is S.requested else None
    bed = get_bed(db, bed_id if bed_id is not None else reserved_id)
    patient = db.get(Patient, admission.patient_id)
    ward = ward_of_bed(db, bed.id)
    if admission.status is not S.requested:
        raise InvalidTransition(f"Admission #{admission.id}", admission.status.value, "admitted")
    _check_sex_policy(ward, patient, field="bed_id")
    at = now or clock.now()
    if reserved_id is not None and reserved_id == bed.id:
        _occupy(db, bed, field="bed_id", from_status=B.reserved)
    else:
        _occupy(db, bed, field="bed_id")
        if reserved_id is not None:  # admitted elsewhere: the reservation is given back
            _unreserve(db, reserved_id)
    _move(db, admission, to=S.admitted, allowed_from=(S.requested,),
          values={"bed_id": bed.id, "bed_marker": 1, "admitted_at": at}, requested="admitted")
    audit.record(db, actor=actor, action=AuditAction.admit, entity=Entity.admission, entity_id=admission.id,
                 summary=f"Admission #{admission.id}: {patient.full_name} admitted to bed {bed.code} ({ward.name})",
                 changes={"status": [S.requested, S.admitted], "bed_id": bed.id, "admitted_at": at})
    return get_admission(db, admission.id)


def admit_patient(
    db: Session,
    *,
    bed_id: int,
    patient_id: int,
    doctor_id: int,
    department_id: int,
    reason: str,
    actor: Actor,
    diagnosis_code: str | None = None,
    admitted_from: AdmittedFrom = AdmittedFrom.direct,
    encounter_id: int | None = None,
) -> Admission:
    """Request and admit in one step, to a chosen bed (the bed board's "Admit to this bed").

    Arguments and errors are those of :func:`request_admission` and :func:`admit`; nothing
    is kept when either refuses (one transaction).

    Returns:
        Admission: the row, admitted to ``bed_id``.
    """
    bed = get_bed(db, bed_id)
    patient = _row(db, Patient, patient_id, "patient_id", "This patient does not exist.")
    if bed.status is not B.free:  # the clear message before any write; the UPDATE decides
        raise BedNotAvailable(f"Bed {bed.code} is {bed.status.value.replace('_', ' ')}; choose a free bed.",
                              field="bed_id")
    _check_sex_policy(ward_of_bed(db, bed.id), patient, field="bed_id")
    _refuse_second_active(db, patient)
    admission = request_admission(
        db, patient_id=patient_id, doctor_id=doctor_id, department_id=department_id, reason=reason,
        actor=actor, diagnosis_code=diagnosis_code, admitted_from=admitted_from, encounter_id=encounter_id,
    )
    return admit(db, admission.id, bed_id=bed_id, actor=actor)


def transfer(db: Session, admission_id: int, *, to_bed_id: int, reason: str, actor: Actor) -> BedTransfer:
    """Move an admitted patient to another free bed (any ward whose sex policy fits).

    The admission keeps its status (admitted or discharge ordered); the new bed becomes
    occupied, the old one goes to cleaning, and a ``bed_transfer`` row keeps the history.

    Args:
        db (Session): open transaction.
        admission_id (int): an admitted (or discharge-ordered) admission.
        to_bed_id (int): a free bed, not the current one.
        reason (str): why (1 to 500 characters).
        actor (Actor): who moves the patient.

    Returns:
        BedTransfer: the history row (from, to, at, by, reason).

    Raises:
        NotFound: no such admission or bed.
        ValidationFailed: no reason, or the same bed.
        InvalidTransition: the admission holds no bed (requested, discharged, cancelled),
            or it changed meanwhile (discharged or transferred by someone else).
        SexPolicyViolation: the new ward does not take the patient's sex.
        BedNotAvailable: the new bed is not free.
    """
    reason = _text(reason, field="reason", what="the reason for the transfer", required=True)
    admission = get_admission(db, admission_id)
    if admission.status not in BED_HOLDING_STATUSES:
        raise InvalidTransition(f"Admission #{admission.id}", admission.status.value, "transferred")
    from_bed_id = admission.bed_id
    if to_bed_id == from_bed_id:
        raise ValidationFailed("The patient is already in this bed; choose another one.", field="to_bed_id")
    to_bed = get_bed(db, to_bed_id, field="to_bed_id")
    patient = db.get(Patient, admission.patient_id)
    ward = ward_of_bed(db, to_bed.id)
    _check_sex_policy(ward, patient, field="to_bed_id")
    if to_bed.status is not B.free:  # the clear message before any write; the UPDATEs decide
        raise BedNotAvailable(f"Bed {to_bed.code} is {to_bed.status.value.replace('_', ' ')}; choose a free bed.",
                              field="to_bed_id")
    # The admission row first (a racing discharge queues on it), on the bed it was read with.
    try:
        with db.begin_nested():
            moved = db.execute(
                update(Admission).where(Admission.id == admission.id, Admission.bed_id == from_bed_id,
                                        Admission.status.in_(BED_HOLDING_STATUSES))
                .values(bed_id=to_bed.id).execution_options(synchronize_session=False)
            ).rowcount
    except IntegrityError:  # the unique key (bed_id, bed_marker): someone holds that bed
        raise BedNotAvailable(f"Bed {to_bed.code} is occupied; choose a free bed.", field="to_bed_id") from None
    if moved != 1:
        current = get_admission(db, admission.id)
        raise InvalidTransition(f"Admission #{admission.id}", current.status.value, "transferred",
                                "it changed while you were choosing the bed; reload")
    _occupy(db, to_bed, field="to_bed_id")
    _vacate(db, from_bed_id)
    at = clock.now()
    row = BedTransfer(admission_id=admission.id, from_bed_id=from_bed_id, to_bed_id=to_bed.id,
                      transferred_at=at, transferred_by=actor.username[:80], reason=reason)
    db.add(row)
    db.flush()
    from_code = db.scalar(select(Bed.code).where(Bed.id == from_bed_id))
    audit.record(db, actor=actor, action=AuditAction.transfer, entity=Entity.admission, entity_id=admission.id,
                 summary=f"Admission #{admission.id}: {patient.full_name} moved from bed {from_code} "
                         f"to {to_bed.code} ({ward.name}): {reason}",
                 changes={"bed_id": [from_bed_id, to_bed.id], "bed_transfer_id": row.id, "reason": reason})
    return row


def order_discharge(db: Session, admission_id: int, *, actor: Actor, note: str | None = None) -> Admission:
    """The doctor orders the discharge (admitted -> discharge_ordered). The bed stays
    occupied until the final discharge (:func:`discharge`).

    Args:
        db (Session): open transaction.
        admission_id (int): an admitted admission.
        actor (Actor): who orders (a doctor, usually).
        note (str | None): discharge note (<= 500 characters).

    Returns:
        Admission: the row, discharge ordered.

    Raises:
        NotFound: no such admission.
        ValidationFailed: the note is too long.
        InvalidTransition: it is not admitted.
    """
    note = _text(note, field="note", what="the discharge note", required=False)
    admission = get_admission(db, admission_id)
    at = clock.now()
    values = {"discharge_ordered_at": at}
    if note:
        values["discharge_note"] = note
    _move(db, admission, to=S.discharge_ordered, allowed_from=(S.admitted,), values=values,
          requested="ordered for discharge")
    audit.record(db, actor=actor, action=AuditAction.order_discharge, entity=Entity.admission,
                 entity_id=admission.id, summary=f"Admission #{admission.id}: discharge ordered",
                 changes={"status": [S.admitted, S.discharge_ordered], "note": note})
    return get_admission(db, admission.id)


def discharge(
    db: Session, admission_id: int, *, actor: Actor, override_reason: str | None = None, now: datetime | None = None,
) -> Admission:
    """The final discharge (discharge_ordered -> discharged); the bed goes to cleaning.

    Args:
        db (Session): open transaction.
        admission_id (int): a discharge-ordered admission.
        actor (Actor): who completes it (a ward nurse, usually).
        override_reason (str | None): required when the patient has an undispensed
            prescription: why the patient leaves anyway (<= 500 characters; audited).
        now (datetime | None): the discharge instant (aware); the hospital clock's by default.

    Returns:
        Admission: the row, discharged, ``discharged_at`` set (``bed_id`` keeps the last bed).

    Raises:
        NotFound: no such admission.
        InvalidTransition: it is not discharge ordered (a discharge order comes first).
        DischargeBlocked: an undispensed prescription and no ``override_reason``.
        ValidationFailed: the reason is too long.
    """
    override_reason = _text(override_reason, field="override_reason", what="the reason", required=False)
    admission = get_admission(db, admission_id)
    if admission.status is not S.discharge_ordered:
        why = "order the discharge first" if admission.status is S.admitted else ""
        raise InvalidTransition(f"Admission #{admission.id}", admission.status.value, "discharged", why)
    blocking = open_prescriptions(db, admission.patient_id)
    if blocking and not override_reason:
        raise DischargeBlocked(
            f"Prescription {', '.join(blocking)} is not dispensed yet; dispense or cancel it, or give a reason "
            "to discharge anyway.", field="override_reason")
    at = now or clock.now()
    _move(db, admission, to=S.discharged, allowed_from=(S.discharge_ordered,),
          values={"discharged_at": at, "active_marker": None, "bed_marker": None}, requested="discharged")
    # Read the bed after winning the row: a transfer that committed first moved it.
    bed_id = db.scalar(select(Admission.bed_id).where(Admission.id == admission.id))
    _vacate(db, bed_id)
    changes = {"status": [S.discharge_ordered, S.discharged], "bed_id": bed_id, "discharged_at": at}
    summary = f"Admission #{admission.id}: discharged; bed #{bed_id} to cleaning"
    if blocking:
        changes.update(open_prescriptions=blocking, override_reason=override_reason)
        summary += f" (open prescriptions {', '.join(blocking)}: {override_reason})"
    audit.record(db, actor=actor, action=AuditAction.discharge, entity=Entity.admission, entity_id=admission.id,
                 summary=summary, changes=changes)
    return get_admission(db, admission.id)


def cancel(db: Session, admission_id: int, *, reason: str, actor: Actor) -> Admission:
    """Cancel a requested admission (requested -> cancelled); it never held a bed, and a bed
    reserved for it is released (reserved -> free).

    Raises:
        NotFound: no such admission.
        ValidationFailed: no reason, or too long.
        InvalidTransition: it is not requested (an admitted patient is discharged instead).
    """
    reason = _text(reason, field="reason", what="a reason", required=True)
    admission = get_admission(db, admission_id)
    reserved_id = admission.bed_id
    _move(db, admission, to=S.cancelled, allowed_from=(S.requested,),
          values={"cancelled_at": clock.now(), "cancel_reason": reason, "active_marker": None, "bed_id": None},
          requested="cancelled")
    if reserved_id is not None:
        _unreserve(db, reserved_id)
    audit.record(db, actor=actor, action=AuditAction.cancel, entity=Entity.admission, entity_id=admission.id,
                 summary=f"Admission #{admission.id} cancelled: {reason}",
                 changes={"status": [S.requested, S.cancelled], "reason": reason, "released_bed_id": reserved_id})
    return get_admission(db, admission.id)


# -- beds ---------------------------------------------------------------------------------


def _move_bed(db: Session, bed: Bed, *, to: BedStatus, allowed_from: tuple[BedStatus, ...], requested: str,
              action: AuditAction, actor: Actor, note: str | None) -> Bed:
    if bed.status not in allowed_from:
        raise InvalidTransition(f"Bed {bed.code}", bed.status.value, requested)
    moved = db.execute(
        update(Bed).where(Bed.id == bed.id, Bed.status.in_(allowed_from)).values(status=to, status_note=note)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        current = db.scalar(select(Bed.status).where(Bed.id == bed.id))
        raise InvalidTransition(f"Bed {bed.code}", BedStatus(current).value, requested)
    audit.record(db, actor=actor, action=action, entity=Entity.bed, entity_id=bed.id,
                 summary=f"Bed {bed.code}: {bed.status.value.replace('_', ' ')} -> {to.value.replace('_', ' ')}"
                         + (f" ({note})" if note else ""),
                 changes={"status": [bed.status, to], "note": note})
    return get_bed(db, bed.id)


def mark_cleaned(db: Session, bed_id: int, *, actor: Actor) -> Bed:
    """Housekeeping is done: the bed is free again (cleaning -> free).

    Raises:
        NotFound: no such bed.
        InvalidTransition: the bed is not being cleaned.
    """
    bed = get_bed(db, bed_id)
    return _move_bed(db, bed, to=B.free, allowed_from=(B.cleaning,), requested="marked clean",
                     action=AuditAction.mark_cleaned, actor=actor, note=None)


def set_out_of_service(db: Session, bed_id: int, *, reason: str, actor: Actor) -> Bed:
    """Take a bed out of service (free, reserved or cleaning -> out_of_service); an
    occupied bed is emptied first (transfer or discharge).

    Raises:
        NotFound: no such bed.
        ValidationFailed: no reason, or longer than 255 characters.
        InvalidTransition: the bed is occupied or already out of service.
    """
    reason = _text(reason, field="reason", what="a reason", required=True, limit=MAX_BED_NOTE)
    bed = get_bed(db, bed_id)
    if bed.status is B.reserved:  # the waiting admission loses its reservation
        db.execute(update(Admission).where(Admission.bed_id == bed.id, Admission.status == S.requested)
                   .values(bed_id=None).execution_options(synchronize_session=False))
    return _move_bed(db, bed, to=B.out_of_service, allowed_from=(B.free, B.reserved, B.cleaning),
                     requested="taken out of service", action=AuditAction.out_of_service, actor=actor, note=reason)


def return_to_service(db: Session, bed_id: int, *, actor: Actor) -> Bed:
    """Put a bed back in service; it is cleaned before its next patient
    (out_of_service -> cleaning).

    Raises:
        NotFound: no such bed.
        InvalidTransition: the bed is not out of service.
    """
    bed = get_bed(db, bed_id)
    return _move_bed(db, bed, to=B.cleaning, allowed_from=(B.out_of_service,), requested="returned to service",
                     action=AuditAction.return_to_service, actor=actor, note=None)



# -- reservations -------------------------------------------------------------------------


def _on_admission(exc: DomainError) -> DomainError:
    """The refusal names the admission as its field (the bed board shows it there)."""
    exc.field = "admission_id"
    return exc


def reserve_bed(db: Session, admission_id: int, *, bed_id: int, actor: Actor) -> Admission:
    """Reserve a free bed for a requested admission (bed free -> reserved); the admission
    keeps ``requested`` and points at the bed (``bed_id``, no ``bed_marker``) until it is
    admitted (:func:`admit` then takes that bed) or the reservation is released.

    Args:
        db (Session): open transaction.
        admission_id (int): a requested admission without a reserved bed.
        bed_id (int): a free bed of a ward whose sex policy takes the patient.
        actor (Actor): who reserves (a ward nurse, usually).

    Returns:
        Admission: the row, still requested, ``bed_id`` = the reserved bed.

    Raises:
        NotFound: no such admission (field ``admission_id``) or bed (field ``bed_id``).
        InvalidTransition: the admission is not requested, or already has a reserved bed.
        SexPolicyViolation: the bed's ward does not take the patient (field ``bed_id``).
        BedNotAvailable: the bed is not free (field ``bed_id``); one conditional UPDATE decides.
    """
    admission = get_admission(db, admission_id)
    bed = get_bed(db, bed_id)
    if admission.status is not S.requested:
        raise _on_admission(InvalidTransition(f"Admission #{admission.id}", admission.status.value, "given a reserved bed"))
    if admission.bed_id is not None:
        raise _on_admission(InvalidTransition(f"Admission #{admission.id}", "reserved", "given a reserved bed",
                                "release its reserved bed first"))
    patient = db.get(Patient, admission.patient_id)
    ward = ward_of_bed(db, bed.id)
    _check_sex_policy(ward, patient, field="bed_id")
    # The admission row first (queues a racing admit/cancel), then the bed.
    moved = db.execute(
        update(Admission).where(Admission.id == admission.id, Admission.status == S.requested,
                                Admission.bed_id.is_(None))
        .values(bed_id=bed.id).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        current = get_admission(db, admission.id)
        raise _on_admission(InvalidTransition(f"Admission #{admission.id}", current.status.value, 
                                              "given a reserved bed"))
    won = db.execute(
        update(Bed).where(Bed.id == bed.id, Bed.status == B.free)
        .values(status=B.reserved, status_note=f"Admission #{admission.id}")
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        current = db.scalar(select(Bed.status).where(Bed.id == bed.id))
        raise BedNotAvailable(f"Bed {bed.code} is {BedStatus(current).value.replace('_', ' ')}; "
                              "choose a free bed.", field="bed_id")
    audit.record(db, actor=actor, action=AuditAction.reserve_bed, entity=Entity.admission, entity_id=admission.id,
                 summary=f"Admission #{admission.id}: bed {bed.code} ({ward.name}) reserved for {patient.full_name}",
                 changes={"bed_id": [None, bed.id], "bed_status": [B.free, B.reserved]})
    return get_admission(db, admission.id)


def release_reservation(db: Session, admission_id: int, *, actor: Actor) -> Admission:
    """Give back the bed reserved for a requested admission (bed reserved -> free); the
    admission stays requested and waits for a bed again.

    Args:
        db (Session): open transaction.
        admission_id (int): a requested admission with a reserved bed.
        actor (Actor): who releases it.

    Returns:
        Admission: the row, requested, ``bed_id`` None.

    Raises:
        NotFound: no such admission (field ``admission_id``).
        InvalidTransition: it is not requested, or has no reserved bed.
    """
    admission = get_admission(db, admission_id)
    if admission.status is not S.requested or admission.bed_id is None:
        state = admission.status.value if admission.status is not S.requested else "without a reserved bed"
        raise _on_admission(InvalidTransition(f"Admission #{admission.id}", state, "released from its bed"))
    bed_id = admission.bed_id
    moved = db.execute(
        update(Admission).where(Admission.id == admission.id, Admission.status == S.requested,
                                Admission.bed_id == bed_id)
        .values(bed_id=None).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        current = get_admission(db, admission.id)
        raise _on_admission(InvalidTransition(f"Admission #{admission.id}", current.status.value, 
                                              "released from its bed"))
    _unreserve(db, bed_id)
    code = db.scalar(select(Bed.code).where(Bed.id == bed_id))
    audit.record(db, actor=actor, action=AuditAction.release_bed, entity=Entity.admission, entity_id=admission.id,
                 summary=f"Admission #{admission.id}: reserved bed {code} released",
                 changes={"bed_id": [bed_id, None], "bed_status": [B.reserved, B.free]})
    return get_admission(db, admission.id)


# -- notes and vitals ---------------------------------------------------------------------

#: Longest inpatient note, characters.
MAX_NOTE = 2000
#: Plausible range of each vital (inclusive), as the table's CHECK constraints: field -> (low, high, label).
VITAL_RANGES: dict[str, tuple[int, int, str]] = {
    "temperature_dc": (300, 440, "Temperature (0.1 \u00b0C)"),
    "pulse": (20, 250, "Pulse (/min)"),
    "systolic": (50, 260, "Systolic (mmHg)"),
    "diastolic": (20, 160, "Diastolic (mmHg)"),
    "respiratory_rate": (4, 60, "Respiratory rate (/min)"),
    "spo2": (50, 100, "SpO2 (%)"),
}


def record_note(db: Session, admission_id: int, *, note: str, actor: Actor, **vitals: int | None) -> InpatientNote:
    """Write a ward note on an active admission, with optional vitals; ``written_at`` is the
    hospital clock's now and the author the actor.

    Args:
        db (Session): open transaction.
        admission_id (int): a requested, admitted or discharge-ordered admission.
        note (str): the note (1 to 2000 characters).
        actor (Actor): who writes it (a doctor or a nurse).
        **vitals (int | None): any of ``temperature_dc`` (0.1 \u00b0C, 300..440),
            ``pulse`` (/min, 20..250), ``systolic`` (mmHg, 50..260), ``diastolic``
            (mmHg, 20..160, below the systolic), ``respiratory_rate`` (/min, 4..60),
            ``spo2`` (%, 50..100); None or absent when not measured.

    Returns:
        InpatientNote: the new row.

    Raises:
        NotFound: no such admission (field ``admission_id``).
        ValidationFailed: no note, too long, an unknown vital, or a vital outside its
            range (field = the vital's name).
        InvalidTransition: the admission is discharged or cancelled (field ``admission_id``).
    """
    text = _text(note, field="note", what="the note", required=True, limit=MAX_NOTE)
    unknown = set(vitals) - set(VITAL_RANGES)
    if unknown:
        raise ValidationFailed(f"Unknown vital {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    values = {k: v for k, v in vitals.items() if v is not None}
    for name, value in values.items():
        low, high, label = VITAL_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationFailed(f"{label} must be between {low} and {high}.", field=name)
    if "systolic" in values and "diastolic" in values and values["diastolic"] >= values["systolic"]:
        raise ValidationFailed("The diastolic pressure must be below the systolic.", field="diastolic")
    admission = get_admission(db, admission_id)
    if admission.status not in (S.requested, S.admitted, S.discharge_ordered):
        err = InvalidTransition(f"Admission #{admission.id}", admission.status.value, "given a note")
        err.field = "admission_id"
        raise err
    row = InpatientNote(admission_id=admission.id, written_at=clock.now(), author=actor.username[:80],
                        note=text, **values)
    db.add(row)
    db.flush()
    audit.record(db, actor=actor, action=AuditAction.record_note, entity=Entity.inpatient_note, entity_id=row.id,
                 summary=f"Admission #{admission.id}: note #{row.id} written",
                 changes={"admission_id": admission.id, **values})
    return row
