"""Admin screen for patients."""

from __future__ import annotations

from sqladmin.filters import StaticValuesFilter
from sqlalchemy import select

from models import Appointment, Encounter, Gender, Patient, Prescription
from portal.core import clock
from views._access import by_role
from views._base import PortalModelView, date_range, enum_choices


class PatientView(PortalModelView, model=Patient):
    """Patients. The MRN is generated; a patient with appointments, encounters or
    prescriptions cannot be deleted."""

    name = "Patient"
    name_plural = "Patients"
    icon = "fa-solid fa-hospital-user"
    category = "Patients"
    column_list = [Patient.medical_record_number, Patient.full_name, Patient.gender, Patient.birth_date, Patient.phone, Patient.national_id, Patient.created_at]
    column_labels = {Patient.created_at: "Registered"}
    column_searchable_list = [Patient.medical_record_number, Patient.full_name, Patient.phone, Patient.national_id]
    column_sortable_list = [Patient.medical_record_number, Patient.full_name, Patient.gender, Patient.birth_date, Patient.created_at]
    column_default_sort = [(Patient.id, True)]
    column_filters = [
        StaticValuesFilter(Patient.gender, values=enum_choices(Gender)),
        *date_range(Patient.birth_date, "Birth date"),
        *date_range(Patient.created_at, "Registered"),
    ]
    form_columns = [Patient.full_name, Patient.gender, Patient.birth_date, Patient.phone, Patient.email, Patient.national_id, Patient.address, Patient.emergency_contact_name, Patient.emergency_contact_phone, Patient.allergies]
    constraint_messages = {
        "national_id": "Another patient already has this national ID.",
        "medical_record_number": "This medical record number is already in use.",
    }
    delete_blockers = [
        (Appointment.patient_id, "appointment"),
        (Encounter.patient_id, "encounter"),
        (Prescription.patient_id, "prescription"),
    ]

    def scope(self, request, stmt):
        """Doctors see the patients who have an appointment with them."""
        return by_role(
            request, stmt,
            doctor=lambda me: Patient.id.in_(
                select(Appointment.patient_id).where(Appointment.doctor_id == me.doctor_id)
            ),
        )

    def validate_model(self, data, model, is_created):
        """Phone numbers normalised, birth date in range, national ID upper-case or empty."""
        from portal.services.patients import check_birth_date, normalise_phone

        if data.get("phone"):
            data["phone"] = normalise_phone(data["phone"])
        if data.get("emergency_contact_phone"):
            data["emergency_contact_phone"] = normalise_phone(data["emergency_contact_phone"])
        if data.get("birth_date"):
            check_birth_date(data["birth_date"], today=clock.today())
        if data.get("national_id") is not None:
            data["national_id"] = data["national_id"].strip().upper() or None
