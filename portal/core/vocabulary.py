"""The audit vocabulary: what can happen (actions) to what (entities).

One spelling per entity everywhere: the audit trail's ``entity`` column, the permission
table (``views/permissions.py``), the admin's URLs (``/admin/<entity>/list``) and the
integrity checks all use :class:`Entity`, whose values are the table names. Every audit
event's ``action`` is an :class:`AuditAction`. Writers pass the members; a string that is
not in the vocabulary is refused by ``portal.services.audit.record``.

Add a member here when a new entity or a new kind of change appears (and the permission
row, the screen, the service that records it); never spell one inline.
"""

from __future__ import annotations

from enum import StrEnum


class Entity(StrEnum):
    """What an audit event, a permission row or an admin URL is about (values: table names)."""

    admission = "admission"
    appointment = "appointment"
    audit_event = "audit_event"
    bed = "bed"
    bed_transfer = "bed_transfer"
    clinic_session = "clinic_session"
    department = "department"
    doctor = "doctor"
    doctor_department = "doctor_department"
    encounter = "encounter"
    icd10_code = "icd10_code"
    inpatient_note = "inpatient_note"
    medicine = "medicine"
    patient = "patient"
    prescription = "prescription"
    prescription_item = "prescription_item"
    room = "room"
    staff_user = "staff_user"
    stock_batch = "stock_batch"
    stock_movement = "stock_movement"
    supplier = "supplier"
    ward = "ward"
    #: the hospital as a whole (the demo seed's event)
    hospital = "hospital"
    #: a report page's export
    report = "report"

    @classmethod
    def of_table(cls, table: str) -> "Entity":
        """The entity of a table name (``stock_batch`` -> ``Entity.stock_batch``).

        Raises:
            ValueError: the table is not in the vocabulary.
        """
        return cls(table)


class AuditAction(StrEnum):
    """What happened, as recorded in ``audit_event.action``."""

    # generic changes through the admin's forms, and exports
    create = "create"
    update = "update"
    delete = "delete"
    export = "export"
    # staff logins and accounts
    login = "login"
    login_failed = "login_failed"
    logout = "logout"
    password_change = "password_change"
    password_reset = "password_reset"
    deactivate = "deactivate"
    reactivate = "reactivate"
    # patients and appointments
    register = "register"
    book = "book"
    confirm = "confirm"
    check_in = "check_in"
    complete = "complete"
    cancel = "cancel"
    no_show = "no_show"
    # clinic sessions
    close = "close"
    reopen = "reopen"
    # stock and dispensing
    receive = "receive"
    expire = "expire"
    quarantine = "quarantine"
    recall = "recall"
    release = "release"
    stocktake = "stocktake"
    adjust = "adjust"
    dispense = "dispense"
    # inpatient care
    request_admission = "request_admission"
    admit = "admit"
    transfer = "transfer"
    order_discharge = "order_discharge"
    discharge = "discharge"
    mark_cleaned = "mark_cleaned"
    reserve_bed = "reserve_bed"
    release_bed = "release_bed"
    record_note = "record_note"
    out_of_service = "out_of_service"
    return_to_service = "return_to_service"
    # maintenance
    seed = "seed"
