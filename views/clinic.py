"""Admin screens for departments, doctors, clinic sessions  and ICD-10 codes."""

from __future__ import annotations

from sqladmin.filters import BooleanFilter, ForeignKeyFilter, StaticValuesFilter
from sqlalchemy import func, select

from models import (
    Appointment,
    AppointmentStatus,
    ClinicSession,
    ClinicSessionStatus,
    Department,
    Doctor,
    DoctorDepartment,
    Encounter,
    Icd10Code,
    Prescription,
    StaffUser,
)
from portal.core import clock
from portal.services import appointments, dashboard
from views._access import by_role
from views._actions import ActionsMixin, row_action
from views._base import PortalModelView, date_range, enum_choices
from views._filters import ColumnFilter, PresetFilter, SearchableForeignKeyFilter
from views._forms import ReasonForm


def _running_now():
    now = clock.local_now()
    return dashboard.sessions_running_condition(now.date(), now.time())


class DepartmentView(PortalModelView, model=Department):
    """Departments: code and name are unique; a department with sessions cannot be deleted."""

    name = "Department"
    name_plural = "Departments"
    icon = "fa-solid fa-hospital"
    category = "Clinic"
    column_list = [Department.code, Department.name, Department.location, Department.phone, Department.is_active]
    column_searchable_list = [Department.code, Department.name, Department.location]
    column_sortable_list = [Department.code, Department.name, Department.is_active]
    column_default_sort = [(Department.name, False)]
    column_filters = [BooleanFilter(Department.is_active, title="Active")]
    form_columns = [Department.code, Department.name, Department.description, Department.location, Department.phone, Department.is_active]
    constraint_messages = {
        "code": "Another department already has this code.",
        "name": "Another department already has this name.",
    }
    delete_blockers = [(ClinicSession.department_id, "clinic session"), (Appointment.department_id, "appointment")]


class DoctorView(PortalModelView, model=Doctor):
    """Doctors and the departments they work in; phone is unique."""

    name = "Doctor"
    name_plural = "Doctors"
    icon = "fa-solid fa-user-doctor"
    category = "Clinic"
    column_list = [Doctor.full_name, Doctor.title, Doctor.specialty, Doctor.departments, Doctor.phone, Doctor.is_active]
    column_searchable_list = [Doctor.full_name, Doctor.phone, Doctor.specialty]
    column_sortable_list = [Doctor.full_name, Doctor.title, Doctor.specialty, Doctor.is_active]
    column_default_sort = [(Doctor.full_name, False)]
    column_filters = [
        BooleanFilter(Doctor.is_active, title="Active"),
        ColumnFilter(Doctor.specialty),
    ]
    form_columns = [Doctor.full_name, Doctor.title, Doctor.gender, Doctor.specialty, Doctor.departments, Doctor.phone, Doctor.email, Doctor.bio, Doctor.is_active]
    constraint_messages = {"phone": "Another doctor already has this phone number."}
    delete_blockers = [
        (ClinicSession.doctor_id, "clinic session"),
        (Appointment.doctor_id, "appointment"),
        (Encounter.doctor_id, "encounter"),
        (Prescription.doctor_id, "prescription"),
        (StaffUser.doctor_id, "staff account"),
    ]


def _cancel_session_preview(view, db, rows, form, user) -> dict[int, str]:
    """Per session: how many appointments cancelling it would cancel."""
    counts = db.execute(
        select(Appointment.clinic_session_id, Appointment.status, func.count())
        .where(Appointment.clinic_session_id.in_([s.id for s in rows]))
        .group_by(Appointment.clinic_session_id, Appointment.status)
    ).all()
    by_session: dict[int, dict[AppointmentStatus, int]] = {}
    for clinic_session_id, status, n in counts:
        by_session.setdefault(clinic_session_id, {})[status] = n
    notes = {}
    for clinic_session in rows:
        c = by_session.get(clinic_session.id, {})
        open_ = c.get(AppointmentStatus.pending, 0) + c.get(AppointmentStatus.confirmed, 0)
        seen = c.get(AppointmentStatus.checked_in, 0) + c.get(AppointmentStatus.completed, 0)
        note = f"{open_} appointment{'s' if open_ != 1 else ''} will be cancelled"
        if seen:
            note += f"; {seen} patient{'s' if seen != 1 else ''} already checked in or seen"
        notes[clinic_session.id] = note + "."
    return notes


class ClinicSessionView(ActionsMixin, PortalModelView, model=ClinicSession):
    """Clinic sessions. ``booked_count``, ``last_queue_number`` and ``status`` change only
    through the services (booking and the workflow actions), so the form leaves them out."""

    name = "Clinic session"
    name_plural = "Clinic sessions"
    icon = "fa-solid fa-calendar-days"
    category = "Clinic"
    column_list = [ClinicSession.session_date, ClinicSession.start_time, ClinicSession.end_time, ClinicSession.doctor, ClinicSession.department, ClinicSession.booked_count, ClinicSession.capacity, ClinicSession.fee, ClinicSession.status]
    column_labels = {ClinicSession.session_date: "Date", ClinicSession.booked_count: "Booked", ClinicSession.start_time: "Start", ClinicSession.end_time: "End", ClinicSession.slot_minutes: "Minutes per patient"}
    column_sortable_list = [ClinicSession.session_date, ClinicSession.start_time, ClinicSession.booked_count, ClinicSession.capacity, ClinicSession.fee, ClinicSession.status]
    column_default_sort = [(ClinicSession.session_date, True), (ClinicSession.start_time, False)]
    column_searchable_list = ["doctor.full_name", "department.name", ClinicSession.note]
    column_filters = [
        StaticValuesFilter(ClinicSession.status, values=enum_choices(ClinicSessionStatus)),
        ForeignKeyFilter(ClinicSession.department_id, Department.name, title="Department"),
        SearchableForeignKeyFilter(ClinicSession.doctor_id, Doctor.full_name, title="Doctor"),
        *date_range(ClinicSession.session_date, "Date"),
        PresetFilter("held", "Taking place", {
            "yes": ("Not cancelled", lambda: ClinicSession.status != ClinicSessionStatus.cancelled),
            "now": ("Running now", _running_now),
        }),
    ]
    money_columns = ("fee",)
    form_columns = [ClinicSession.doctor, ClinicSession.department, ClinicSession.session_date, ClinicSession.start_time, ClinicSession.end_time, ClinicSession.slot_minutes, ClinicSession.capacity, ClinicSession.fee, ClinicSession.note]
    form_args = {
        "fee": {"description": "Registration fee in yuan, e.g. 15.00"},
        "slot_minutes": {"description": "Estimated minutes per patient"},
        "start_time": {"description": "Hospital time"},
    }
    constraint_messages = {
        "uq_clinic_session_doctor_start": "This doctor already has a session starting at that date and time.",
        "ck_clinic_session_capacity": "Capacity must be at least 1.",
        "ck_clinic_session_booked": "Capacity cannot be lower than the places already booked.",
        "ck_clinic_session_times": "The session must end after it starts.",
        "ck_clinic_session_slot": "Minutes per patient must be at least 1.",
        "ck_clinic_session_fee": "The fee cannot be negative.",
    }
    delete_blockers = [(Appointment.clinic_session_id, "appointment")]

    def scope(self, request, stmt):
        """Doctors see their own clinic sessions."""
        return by_role(request, stmt, doctor=lambda me: ClinicSession.doctor_id == me.doctor_id)

    def validate_model(self, data, model, is_created):
        """Times in order, capacity >= 1 and not below the places booked, fee >= 0; a session
        that has taken bookings keeps its doctor, department and date."""
        start, end = data.get("start_time"), data.get("end_time")
        if start and end and end <= start:
            raise ValueError("The session must end after it starts.")
        if data.get("capacity") is not None and data["capacity"] < 1:
            raise ValueError("Capacity must be at least 1.")
        if not is_created and data.get("capacity") is not None and data["capacity"] < model.booked_count:
            raise ValueError(
                f"Capacity cannot be lower than the {model.booked_count} places already booked."
            )
        if data.get("slot_minutes") is not None and data["slot_minutes"] < 1:
            raise ValueError("Minutes per patient must be at least 1.")
        if data.get("fee") is not None and data["fee"] < 0:
            raise ValueError("The fee cannot be negative.")
        # Appointments copy the session's doctor, department and date (models/appointments.py),
        # and patients were told them: a session that ever took a booking (its queue numbers
        # started) keeps all three; staff cancel it and open another instead.
        if not is_created and (model.booked_count or model.last_queue_number) and (
            (data.get("doctor") and str(data["doctor"]) != str(model.doctor_id))
            or (data.get("department") and str(data["department"]) != str(model.department_id))
            or (data.get("session_date") and data["session_date"] != model.session_date)
        ):
            raise ValueError("A session with bookings cannot move to another doctor, department or date.")

    def row_label(self, row: ClinicSession) -> str:
        """``#12 2026-11-20 08:00 Dr Wang``: the session as staff recognise it."""
        doctor = row.__dict__.get("doctor")
        return f"#{row.id} {row.session_date} {row.start_time:%H:%M}" + (f" {doctor.full_name}" if doctor else "")

    # -- workflow actions ---------------------------------------------------------------
    @row_action("close", "Close booking", done="closed for booking", title="Close booking for {count} {noun}",
                explain="The selected open sessions stop taking new bookings; their appointments stay as they are.")
    def action_close(self, db, pk, *, actor, data):
        """Stop taking bookings for a session."""
        appointments.close_clinic_session(db, pk, actor=actor)

    @row_action("reopen", "Reopen booking", done="reopened for booking", title="Reopen booking for {count} {noun}",
                explain="The selected closed sessions take bookings again (not once a session has ended).")
    def action_reopen(self, db, pk, *, actor, data):
        """Take bookings again."""
        appointments.reopen_clinic_session(db, pk, actor=actor)

    @row_action("cancel-session", "Cancel session", done="cancelled", form=ReasonForm, danger=True,
                title="Cancel {count} {noun}", preview=_cancel_session_preview,
                explain="The selected sessions will not run: every pending or confirmed appointment in them "
                "is cancelled with the reason below, and the patients must be told. A session where "
                "patients have already been seen cannot be cancelled.")
    def action_cancel_session(self, db, pk, *, actor, data):
        """Cancel a whole session and its open appointments."""
        _, references = appointments.cancel_clinic_session(db, pk, actor=actor, reason=data["reason"])
        return f"{len(references)} appointment{'s' if len(references) != 1 else ''} cancelled"


class Icd10CodeView(PortalModelView, model=Icd10Code):
    """ICD-10-CM categories used for diagnoses (reference data; never deleted)."""

    name = "ICD-10 code"
    name_plural = "ICD-10 codes"
    icon = "fa-solid fa-book-medical"
    category = "Reference"
    column_list = [Icd10Code.code, Icd10Code.title]
    column_searchable_list = [Icd10Code.code, Icd10Code.title]
    column_sortable_list = [Icd10Code.code, Icd10Code.title]
    column_default_sort = [(Icd10Code.code, False)]
    form_columns = [Icd10Code.code, Icd10Code.title]
    form_include_pk = True
    constraint_messages = {"code": "This ICD-10 code already exists."}
    can_delete = False

    def validate_model(self, data, model, is_created):
        """Codes are stored upper-case; an existing code keeps its code."""
        if data.get("code"):
            data["code"] = data["code"].upper()
        if not is_created and data.get("code") != model.code:
            raise ValueError("The code of an existing ICD-10 entry cannot change; add a new one.")


__all__ = ["DepartmentView", "DoctorView", "ClinicSessionView", "Icd10CodeView", "DoctorDepartment"]
