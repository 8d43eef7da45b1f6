"""Admin screens for appointments and encounters."""

from __future__ import annotations

import re

from sqladmin import expose
from sqladmin.filters import ForeignKeyFilter, StaticValuesFilter
from sqladmin.flash import Flash
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from models import Appointment, AppointmentStatus, BookingChannel, Department, Doctor, Encounter
from portal.core.db import run_in_transaction
from portal.core.errors import DomainError
from portal.services import appointments
from portal.services.references import normalise_reference
from views._access import by_role
from views._actions import ActionsMixin, PageLink, row_action
from views._base import PortalModelView, date_range, enum_choices
from views._booking import BookForm, book_from_form, lookup_results, selection_texts
from views._filters import SearchableForeignKeyFilter
from views._forms import ReasonForm, parse_id, posted_form


class AppointmentView(ActionsMixin, PortalModelView, model=Appointment):
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
    column_labels = {Appointment.session_date: "Date", Appointment.queue_number: "No.", Appointment.booked_at: "Booked", Appointment.is_overbooked: "Overbooked"}
    column_searchable_list = [Appointment.reference, "patient.full_name", "patient.medical_record_number", "patient.phone"]
    column_sortable_list = [Appointment.id, Appointment.reference, Appointment.session_date, Appointment.queue_number, Appointment.status, Appointment.channel, Appointment.booked_at]
    column_default_sort = [(Appointment.id, True)]
    column_filters = [
        StaticValuesFilter(Appointment.status, values=enum_choices(AppointmentStatus)),
        ForeignKeyFilter(Appointment.department_id, Department.name, title="Department"),
        SearchableForeignKeyFilter(Appointment.doctor_id, Doctor.full_name, title="Doctor"),
        *date_range(Appointment.session_date, "Date"),
        StaticValuesFilter(Appointment.channel, values=enum_choices(BookingChannel)),
        *date_range(Appointment.booked_at, "Booked"),
    ]
    column_details_exclude_list = [Appointment.active_marker, Appointment.submission_key]
    column_export_exclude_list = [Appointment.active_marker, Appointment.submission_key]
    page_links = [PageLink("book", "Book appointment", "page_book")]

    def scope(self, request, stmt):
        """Doctors see their own appointments."""
        return by_role(request, stmt, doctor=lambda me: Appointment.doctor_id == me.doctor_id)

    def search_query(self, stmt, term):
        """Search the reference and the patient's name, MRN and phone, as sqladmin does,
        except for a whole booking reference typed with its dash (``K7MX9-3QD2A``, any case,
        O/I/L/U read as 0/1/1/V): that finds its appointment through the unique index
        instead of reading a million rows.

        The answer is the same: every reference the portal issues has one length, so
        "contains" is "equals" for it, and no other searched field can hold such a text
        (an MRN is ``MRN-`` and 8 digits, a phone only digits and ``+``; a name holding a
        booking reference is not a name).
        """
        typed = term.strip().upper()
        reference = normalise_reference(typed) if _REFERENCE_SHAPE.fullmatch(typed) else None
        if reference is not None:
            return stmt.where(Appointment.reference.in_(sorted({reference, typed})))
        return super().search_query(stmt, term)

    # -- workflow actions (each calls one service function per selected row) ----------
    @row_action("confirm", "Confirm", done="confirmed",
                explain="Each selected appointment goes from pending to confirmed.")
    def action_confirm(self, db, pk, *, actor, data):
        """Confirm a pending booking."""
        appointments.confirm(db, pk, actor=actor)

    @row_action("check-in", "Check in", done="checked in",
                explain="Registers that the patient has arrived: pending or confirmed appointments "
                "of today's sessions become checked in.")
    def action_check_in(self, db, pk, *, actor, data):
        """Register the patient's arrival."""
        appointment = appointments.check_in(db, pk, actor=actor)
        return f"no. {appointment.queue_number}"

    @row_action("complete", "Complete", done="completed",
                explain="Closes the visit of each selected checked-in appointment.")
    def action_complete(self, db, pk, *, actor, data):
        """Close a visit."""
        appointments.complete(db, pk, actor=actor)

    @row_action("cancel", "Cancel appointment", done="cancelled", form=ReasonForm, danger=True,
                title="Cancel {count} {noun}",
                explain="Each selected pending or confirmed appointment is cancelled with the reason "
                "below, and its place in the clinic session becomes free again.")
    def action_cancel(self, db, pk, *, actor, data):
        """Cancel a booking and release its place."""
        appointments.cancel(db, pk, actor=actor, reason=data["reason"])

    @row_action("no-show", "Mark no-show", done="marked as no-show", title="Mark {count} {noun} as no-show",
                explain="Records that the patient did not come. Only confirmed appointments whose "
                "session has ended can be marked; the place stays used.")
    def action_no_show(self, db, pk, *, actor, data):
        """Record that a confirmed patient did not come."""
        appointments.mark_no_show(db, pk, actor=actor)

    # -- front desk booking page --------------------------------------------------------
    @expose("/book", methods=["GET", "POST"])
    async def page_book(self, request: Request) -> Response:
        """Book a patient into a clinic session (front desk or phone); calls ``appointments.book``."""
        self.require_permission(request, "book")
        if request.method == "GET":
            form = BookForm(data={"clinic_session_id": parse_id(request.query_params.get("clinic_session_id"))})
            status_code = 200
        else:
            posted = await posted_form(request)
            self.require_csrf(request, posted)
            form = BookForm(formdata=posted)
            if form.validate():
                try:
                    appointment_id, message = await run_in_threadpool(
                        run_in_transaction, book_from_form, engine=self.engine,
                        actor=self.actor(request), data=form.data,
                    )
                except DomainError as exc:
                    form.attach_service_error(exc)
                else:
                    Flash.success(request, message)
                    return RedirectResponse(
                        request.url_for("admin:details", identity=self.identity, pk=appointment_id), status_code=303
                    )
            status_code = 400
        form.clinic_session_id.lookup_url = form.patient_id.lookup_url = str(
            request.url_for(f"admin:view-{self.identity}-page_book_lookup")
        )
        await run_in_threadpool(selection_texts, self.engine, form)
        return await self.render(request, "portal/book.html", {"heading": "Book appointment", "form": form},
                                 status_code=status_code)

    @expose("/book/lookup", methods=["GET"])
    async def page_book_lookup(self, request: Request) -> Response:
        """Search answers for the booking page's pickers (``name`` = field, ``term`` = text)."""
        self.require_permission(request, "book")
        name = request.query_params.get("name", "")
        term = request.query_params.get("term", "").strip()[:60]
        results = await run_in_threadpool(lookup_results, self.engine, name, term)
        return JSONResponse({"results": results})


#: A whole booking reference as typed: five letters or digits, a dash, five more.
_REFERENCE_SHAPE = re.compile(r"[0-9A-Z]{5}-[0-9A-Z]{5}")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


class EncounterView(PortalModelView, model=Encounter):
    """Visit records: chief complaint, ICD-10 diagnosis and notes."""

    name = "Encounter"
    name_plural = "Encounters"
    icon = "fa-solid fa-notes-medical"
    category = "Patients"
    column_list = [Encounter.created_at, Encounter.patient, Encounter.doctor, Encounter.chief_complaint, Encounter.diagnosis]
    column_labels = {Encounter.created_at: "Date"}
    column_searchable_list = [Encounter.chief_complaint, Encounter.diagnosis_code, "diagnosis.title", "patient.full_name", "patient.medical_record_number"]
    column_sortable_list = [Encounter.created_at, Encounter.diagnosis_code]
    column_default_sort = [(Encounter.id, True)]
    column_filters = [
        SearchableForeignKeyFilter(Encounter.doctor_id, Doctor.full_name, title="Doctor"),
        *date_range(Encounter.created_at, "Date"),
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
        """A visit needs a chief complaint."""
        if not (data.get("chief_complaint") or "").strip():
            raise ValueError("Enter the chief complaint.")
