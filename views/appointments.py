"""Admin screens for appointments and encounters."""

from __future__ import annotations

from sqladmin.filters import ForeignKeyFilter, OperationColumnFilter, StaticValuesFilter

from models import Appointment, AppointmentStatus, BookingChannel, Department, Doctor, Encounter
from views._access import by_role, local_today
from views._base import LocalDateTimeFilter, PortalModelView


class AppointmentView(PortalModelView, model=Appointment):
    """Appointments. Status, queue number and the place taken change only through
    the workflow actions (book, confirm, check in, complete, cancel, no-show), so the
    generic create and edit forms are off; staff book through the services."""

    name = "Appointment"
    name_plural = "Appointments"
    icon = "fa-solid fa-calendar-check"
    category = "Patients"
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [Appointment.reference, Appointment.session_date, Appointment.queue_number, Appointment.patient, Appointment.doctor, Appointment.department, Appointment.status, Appointment.channel, Appointment.booked_at]
    column_labels = {Appointment.session_date: "Date", Appointment.queue_number: "No.", Appointment.booked_at: "Booked"}
    column_searchable_list = [Appointment.reference]
    column_sortable_list = [Appointment.id, Appointment.session_date, Appointment.queue_number, Appointment.status, Appointment.booked_at]
    column_default_sort = [(Appointment.id, True)]
    column_filters = [
        StaticValuesFilter(Appointment.status, values=[(s.value, s.value.replace("_", " ").title()) for s in AppointmentStatus]),
        ForeignKeyFilter(Appointment.department_id, Department.name, title="Department"),
        ForeignKeyFilter(Appointment.doctor_id, Doctor.full_name, title="Doctor"),
        OperationColumnFilter(Appointment.session_date, title="Date"),
        StaticValuesFilter(Appointment.channel, values=[(c.value, c.value.replace("_", " ").title()) for c in BookingChannel]),
        LocalDateTimeFilter(Appointment.booked_at, title="Booked"),
    ]
    column_details_exclude_list = [Appointment.active_marker, Appointment.submission_key]
    column_export_exclude_list = [Appointment.active_marker, Appointment.submission_key]

    def scope(self, request, stmt):
        """Doctors see their own appointments; nurses see today's."""
        return by_role(
            request, stmt,
            doctor=lambda me: Appointment.doctor_id == me.doctor_id,
            nurse=lambda me: Appointment.session_date == local_today(),
        )


class EncounterView(PortalModelView, model=Encounter):
    """Visit records: chief complaint, ICD-10 diagnosis and notes."""

    name = "Encounter"
    name_plural = "Encounters"
    icon = "fa-solid fa-notes-medical"
    category = "Patients"
    column_list = [Encounter.created_at, Encounter.patient, Encounter.doctor, Encounter.chief_complaint, Encounter.diagnosis]
    column_searchable_list = [Encounter.chief_complaint, Encounter.diagnosis_code]
    column_sortable_list = [Encounter.created_at]
    column_default_sort = [(Encounter.id, True)]
    column_filters = [
        ForeignKeyFilter(Encounter.doctor_id, Doctor.full_name, title="Doctor"),
        LocalDateTimeFilter(Encounter.created_at, title="Date"),
    ]
    form_columns = [Encounter.appointment, Encounter.patient, Encounter.doctor, Encounter.chief_complaint, Encounter.diagnosis, Encounter.notes]
    form_ajax_refs = {
        "patient": {"fields": ("full_name", "medical_record_number", "phone"), "order_by": "id"},
        "diagnosis": {"fields": ("code", "title"), "order_by": "code"},
        "appointment": {"fields": ("reference",), "order_by": "id"},
        "doctor": {"fields": ("full_name",), "order_by": "full_name"},
    }
    constraint_messages = {"appointment_id": "This appointment already has an encounter."}
    owner_field = "doctor"

    def scope(self, request, stmt):
        """Doctors see (and write) only their own encounters."""
        return by_role(request, stmt, doctor=lambda me: Encounter.doctor_id == me.doctor_id)

    def validate_model(self, data, model, is_created):
        if not (data.get("chief_complaint") or "").strip():
            raise ValueError("Enter the chief complaint.")
