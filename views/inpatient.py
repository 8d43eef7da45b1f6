"""Admin screens for inpatient care: wards, rooms, beds, admissions, bed transfers, and
the bed board. Bed and admission statuses move only through the workflow actions, which
call ``portal.services.inpatient``; the generic forms never show a status."""

from __future__ import annotations

from typing import Any

from sqladmin import BaseView, expose
from sqladmin.filters import BooleanFilter, ForeignKeyFilter, StaticValuesFilter
from sqladmin.flash import Flash
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from wtforms import Form, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from models import (
    Admission,
    AdmissionStatus,
    AdmittedFrom,
    Bed,
    BedStatus,
    BedTransfer,
    Department,
    InpatientNote,
    Doctor,
    Patient,
    Room,
    SexPolicy,
    StaffUser,
    Ward,
)
from portal.core.actor import SYSTEM, Actor, current_actor
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import DomainError
from portal.services import inpatient
from portal.services.dashboard import bed_board, waiting_for_a_bed
from views import permissions
from views._actions import ActionsMixin, PageLink, page_action, row_action
from views._base import PortalModelView, date_range, enum_choices, local_datetime
from views._booking import lookup_results, patient_text
from views._forms import LookupField, attach_service_error, parse_id, posted_form, reason_form
from views._refusals import FormRefusal
from views.authorization import role_of

CATEGORY = "Inpatients"
BedReasonForm = reason_form(max_length=inpatient.MAX_BED_NOTE, label="Reason", description="Why the bed is out of service; recorded in the audit log.")
CancelAdmissionForm = reason_form(label="Reason for cancelling")


class WardView(PortalModelView, model=Ward):
    """Wards: department, name, sex policy and floor (reference data)."""

    name = "Ward"
    name_plural = "Wards"
    icon = "fa-solid fa-hospital-user"
    category = CATEGORY
    column_list = [Ward.name, Ward.department, Ward.sex_policy, Ward.floor, Ward.is_active]
    column_labels = {Ward.sex_policy: "Sex policy", Ward.is_active: "Active"}
    column_searchable_list = [Ward.name]
    column_sortable_list = [Ward.name, Ward.floor, Ward.sex_policy]
    column_default_sort = [(Ward.name, False)]
    column_filters = [
        ForeignKeyFilter(Ward.department_id, Department.name, title="Department"),
        StaticValuesFilter(Ward.sex_policy, values=enum_choices(SexPolicy)),
        BooleanFilter(Ward.is_active, title="Active"),
    ]
    form_columns = [Ward.department, Ward.name, Ward.sex_policy, Ward.floor, Ward.is_active]
    constraint_messages = {"name": "Another ward already has this name."}
    delete_blockers = [(Room.ward_id, "room")]


class RoomView(PortalModelView, model=Room):
    """Rooms of a ward (reference data)."""

    name = "Room"
    name_plural = "Rooms"
    icon = "fa-solid fa-door-closed"
    category = CATEGORY
    column_list = [Room.number, Room.ward]
    column_searchable_list = [Room.number, "ward.name"]
    column_sortable_list = [Room.number]
    column_default_sort = [(Room.ward_id, False), (Room.number, False)]
    column_filters = [ForeignKeyFilter(Room.ward_id, Ward.name, title="Ward")]
    form_columns = [Room.ward, Room.number]
    constraint_messages = {"uq_room_ward_number": "This ward already has a room with this number."}
    delete_blockers = [(Bed.room_id, "bed")]


class TransferForm(Form):
    """Where to and why (the free beds are filled in by :func:`_free_bed_choices`)."""

    to_bed_id = SelectField("New bed", [DataRequired("Choose the new bed.")], coerce=lambda v: parse_id(v), choices=[])
    reason = TextAreaField("Reason", [DataRequired("Give a reason."), Length(max=500)], render_kw={"rows": 2})


class AdmitForm(Form):
    """The bed of a requested admission."""

    bed_id = SelectField("Bed", [DataRequired("Choose a bed.")], coerce=lambda v: parse_id(v), choices=[])


class OrderDischargeForm(Form):
    """An optional discharge note."""

    note = TextAreaField("Discharge note", [Optional(), Length(max=500)], render_kw={"rows": 2})


class DischargeForm(Form):
    """The reason needed when something is still open for the patient."""

    override_reason = TextAreaField(
        "Reason to discharge anyway", [Optional(), Length(max=500)], render_kw={"rows": 2},
        description="Only needed when a prescription is not dispensed yet; recorded in the audit log.")


def free_bed_labels(db: Session) -> list[tuple[int, str]]:
    """Every free bed as ``(id, "Ward · bed code")``, by ward then code."""
    rows = db.execute(
        select(Bed.id, Bed.code, Ward.name, Ward.sex_policy).join(Room, Room.id == Bed.room_id)
        .join(Ward, Ward.id == Room.ward_id).where(Bed.status == BedStatus.free).order_by(Ward.name, Bed.code)
    ).all()
    return [(r.id, f"{r.name} \u00b7 {r.code}" + ("" if r.sex_policy is SexPolicy.mixed else f" ({r.sex_policy.value})"))
            for r in rows]


def _free_bed_choices(field_name: str):
    def preview(view, db, rows, form, user) -> dict[Any, str]:
        if form is not None:
            getattr(form, field_name).choices = [("", "(choose a free bed)")] + [
                (str(i), label) for i, label in free_bed_labels(db)]
        return {}
    return preview


def _admit_bed_choices(view, db, rows, form, user) -> dict[Any, str]:
    """The admit form's beds: the selected admissions' reserved beds first, then every free bed."""
    if form is not None:
        reserved = [(str(b.id), f"{b.code} (reserved)") for b in db.scalars(
            select(Bed).where(Bed.id.in_([r.bed_id for r in rows if r.bed_id is not None]),
                              Bed.status == BedStatus.reserved).order_by(Bed.code))]
        form.bed_id.choices = [("", "(choose a bed)")] + reserved + [
            (str(i), label) for i, label in free_bed_labels(db)]
    return {}


def _discharge_preview(view, db, rows, form, user) -> dict[Any, str]:
    notes = {}
    for row in rows:
        open_rx = inpatient.open_prescriptions(db, row.patient_id)
        if open_rx:
            notes[row.id] = f"Not dispensed yet: {', '.join(open_rx)} (give a reason)"
    return notes


class BedView(ActionsMixin, PortalModelView, model=Bed):
    """Beds. The status moves only through the actions and the admission services."""

    name = "Bed"
    name_plural = "Beds"
    icon = "fa-solid fa-bed"
    category = CATEGORY
    column_list = [Bed.code, Bed.room, Bed.status, Bed.daily_rate, Bed.status_note]
    column_labels = {Bed.daily_rate: "Daily rate", Bed.status_note: "Note"}
    column_searchable_list = [Bed.code]
    column_sortable_list = [Bed.code, Bed.status, Bed.daily_rate]
    column_default_sort = [(Bed.code, False)]
    column_filters = [StaticValuesFilter(Bed.status, values=enum_choices(BedStatus)),
                      ForeignKeyFilter(Bed.room_id, Room.number, title="Room")]
    money_columns = ("daily_rate",)
    form_columns = [Bed.room, Bed.code, Bed.daily_rate]
    form_args = {"daily_rate": {"description": "Charge per midnight occupied, in yuan, e.g. 80.00"}}
    constraint_messages = {"code": "Another bed already has this code.",
                           "ck_bed_daily_rate": "The daily rate cannot be negative."}
    delete_blockers = [(Admission.bed_id, "admission"), (BedTransfer.to_bed_id, "bed transfer"),
                       (BedTransfer.from_bed_id, "bed transfer")]

    open_admit = page_action("admit", "Admit patient", endpoint="page_admit")

    @row_action("mark-cleaned", "Mark cleaned", done="marked clean",
                explain="Each selected bed being cleaned becomes free for the next patient.")
    def action_mark_cleaned(self, db, pk, *, actor, data):
        """Cleaning is done: the bed is free."""
        inpatient.mark_cleaned(db, pk, actor=actor)

    @row_action("out-of-service", "Out of service", done="taken out of service", form=BedReasonForm, danger=True,
                explain="The selected beds take no patient until they are put back in service.")
    def action_out_of_service(self, db, pk, *, actor, data):
        """Take a bed out of service."""
        inpatient.set_out_of_service(db, pk, actor=actor, reason=data["reason"])

    @row_action("back-in-service", "Back in service", done="put back in service",
                explain="The selected beds are cleaned before their next patient.")
    def action_back_in_service(self, db, pk, *, actor, data):
        """Put a bed back in service (it goes to cleaning)."""
        inpatient.return_to_service(db, pk, actor=actor)

    @expose("/admit/{pk}", methods=["GET", "POST"])
    async def page_admit(self, request: Request) -> Response:
        """Admit a patient to this bed (calls ``inpatient.admit_patient``)."""
        self.require_permission(request, "admit")
        bed_id = parse_id(request.path_params.get("pk"))
        facts = await run_in_threadpool(_bed_facts, self.engine, bed_id)
        if facts is None:
            return Response("This bed does not exist.", status_code=404, media_type="text/plain")
        form = AdmitPatientForm(formdata=None, data={"department_id": facts["department_id"]})
        status_code = 200
        if request.method == "POST":
            posted = await posted_form(request)
            self.require_csrf(request, posted)
            form = AdmitPatientForm(formdata=posted)
        await run_in_threadpool(_fill_admit_choices, self.engine, form)
        if request.method == "POST":
            if form.validate():
                try:
                    message = await run_in_threadpool(
                        run_in_transaction, _admit_from_form, engine=self.engine, bed_id=bed_id,
                        actor=self.actor(request), data=form.data)
                except DomainError as exc:
                    attach_service_error(form, exc, fields={"bed_id": "patient_id"} if exc.field == "bed_id" else None)
                else:
                    Flash.success(request, message)
                    return RedirectResponse(request.url_for("admin:view-bed-board"), status_code=303)
            status_code = 400
        form.patient_id.lookup_url = str(request.url_for(f"admin:view-{self.identity}-page_admit_lookup"))
        return await self.render(request, "portal/form_page.html", {
            "heading": f"Admit a patient to bed {facts['code']}", "form": form, "facts": facts["facts"],
            "action_url": str(request.url_for(f"admin:view-{self.identity}-page_admit", pk=str(bed_id))),
            "submit": "Admit", "back_url": str(request.url_for("admin:view-bed-board")),
        }, status_code=status_code)

    @expose("/admit-lookup", methods=["GET"])
    async def page_admit_lookup(self, request: Request) -> Response:
        """Search answers for the admit page's patient picker (``term`` = text)."""
        self.require_permission(request, "admit")
        term = request.query_params.get("term", "").strip()[:60]
        results = await run_in_threadpool(lookup_results, self.engine, "patient_id", term)
        return JSONResponse({"results": results})


class AdmitPatientForm(Form):
    """Admit a patient to a chosen bed: who, by whom, why."""

    patient_id = LookupField("Patient", [InputRequired("Choose a patient.")],
                             placeholder="Type a name, MRN, phone or national ID")
    doctor_id = SelectField("Admitting doctor", [DataRequired("Choose the doctor.")], coerce=lambda v: parse_id(v),
                            choices=[])
    department_id = SelectField("Department", [DataRequired("Choose the department.")],
                                coerce=lambda v: parse_id(v), choices=[])
    admitted_from = SelectField("Admitted from", choices=[(m.value, m.value.title()) for m in AdmittedFrom],
                                default=AdmittedFrom.direct.value)
    diagnosis_code = StringField("Diagnosis (ICD-10)", [Optional(), Length(max=8)],
                                 description="An ICD-10 category, e.g. J18.")
    reason = TextAreaField("Reason for admission", [DataRequired("Give the reason for admission."), Length(max=500)],
                           render_kw={"rows": 2})


def _bed_facts(engine: Engine, bed_id: int | None) -> dict[str, Any] | None:
    if bed_id is None:
        return None
    with transaction(engine, write=False) as db:
        row = db.execute(
            select(Bed, Room.number, Ward.name, Ward.sex_policy, Ward.department_id).join(Room, Room.id == Bed.room_id)
            .join(Ward, Ward.id == Room.ward_id).where(Bed.id == bed_id)
        ).first()
    if row is None:
        return None
    bed = row[0]
    return {"code": bed.code, "department_id": row.department_id, "facts": [
        ("Ward", f"{row.name} ({row.sex_policy.value})"), ("Room", row.number),
        ("Bed", f"{bed.code}: {bed.status.value.replace('_', ' ')}")]}


def _fill_admit_choices(engine: Engine, form: AdmitPatientForm) -> None:
    with transaction(engine, write=False) as db:
        form.doctor_id.choices = [("", "(choose)")] + [
            (str(d.id), str(d)) for d in db.scalars(select(Doctor).where(Doctor.is_active.is_(True))
                                                    .order_by(Doctor.full_name))]
        form.department_id.choices = [("", "(choose)")] + [
            (str(i), n) for i, n in db.execute(select(Department.id, Department.name).order_by(Department.name))]
        if form.patient_id.data is not None:
            patient = db.get(Patient, form.patient_id.data)
            form.patient_id.display = patient_text(patient) if patient else ""


def _admit_from_form(db: Session, *, bed_id: int, actor: Actor, data: dict[str, Any]) -> str:
    admission = inpatient.admit_patient(
        db, bed_id=bed_id, patient_id=data["patient_id"], doctor_id=data["doctor_id"],
        department_id=data["department_id"], reason=data["reason"], actor=actor,
        diagnosis_code=data.get("diagnosis_code") or None, admitted_from=AdmittedFrom(data["admitted_from"]),
    )
    patient = db.get(Patient, admission.patient_id)
    bed = db.get(Bed, admission.bed_id)
    return f"{patient.full_name} admitted to bed {bed.code} (admission #{admission.id})."


class RequestAdmissionForm(AdmitPatientForm):
    """A doctor's request: the same fields as admitting to a bed, without the bed."""


def _doctor_of(engine: Engine, username: str) -> int | None:
    """The doctor record of a staff login (a doctor requests in their own name), or None."""
    with transaction(engine, write=False) as db:
        return db.scalar(select(StaffUser.doctor_id).where(StaffUser.username == username))


def _request_from_form(db: Session, *, actor: Actor, data: dict[str, Any]) -> str:
    admission = inpatient.request_admission(
        db, patient_id=data["patient_id"], doctor_id=data["doctor_id"], department_id=data["department_id"],
        reason=data["reason"], actor=actor, diagnosis_code=data.get("diagnosis_code") or None,
        admitted_from=AdmittedFrom(data["admitted_from"]),
    )
    patient = db.get(Patient, admission.patient_id)
    return f"Admission #{admission.id} requested for {patient.full_name}; waiting for a bed."


class AdmissionView(ActionsMixin, PortalModelView, model=Admission):
    """Admissions: from the request to the final discharge. Every change is an action."""

    name = "Admission"
    name_plural = "Admissions"
    icon = "fa-solid fa-procedures"
    category = CATEGORY
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [Admission.id, Admission.patient, Admission.bed, Admission.status, Admission.doctor,
                   Admission.department, Admission.diagnosis, Admission.admitted_at, Admission.discharged_at]
    column_labels = {Admission.id: "No.", Admission.admitted_at: "Admitted", Admission.discharged_at: "Discharged",
                     Admission.admitted_from: "Admitted from"}
    column_searchable_list = ["patient.full_name", "patient.medical_record_number", Admission.diagnosis_code]
    column_sortable_list = [Admission.id, Admission.status, Admission.admitted_at, Admission.discharged_at]
    column_default_sort = [(Admission.id, True)]
    column_filters = [
        StaticValuesFilter(Admission.status, values=enum_choices(AdmissionStatus)),
        ForeignKeyFilter(Admission.department_id, Department.name, title="Department"),
        *date_range(Admission.admitted_at, "Admitted"),
    ]
    column_details_exclude_list = [Admission.active_marker, Admission.bed_marker]
    column_export_exclude_list = [Admission.active_marker, Admission.bed_marker]

    page_links = [PageLink("request", "Request admission", "page_request")]

    @row_action("admit", "Admit to bed", done="admitted", form=AdmitForm, preview=_admit_bed_choices,
                explain="The selected requested admission takes the chosen bed (its reserved bed, or a free one; "
                "another bed gives the reservation back).")
    def action_admit(self, db, pk, *, actor, data):
        """Admit a requested admission to a bed."""
        admission = inpatient.admit(db, pk, bed_id=data["bed_id"], actor=actor)
        return db.get(Bed, admission.bed_id).code

    @row_action("reserve-bed", "Reserve bed", done="given a reserved bed", form=AdmitForm,
                preview=_free_bed_choices("bed_id"),
                explain="The chosen free bed is kept for the selected requested admission until it is admitted.")
    def action_reserve_bed(self, db, pk, *, actor, data):
        """Reserve a free bed for a requested admission."""
        admission = inpatient.reserve_bed(db, pk, bed_id=data["bed_id"], actor=actor)
        return db.get(Bed, admission.bed_id).code

    @row_action("release-bed", "Release bed", done="released from its bed",
                explain="The bed reserved for each selected admission is free again; the admission keeps waiting.")
    def action_release_bed(self, db, pk, *, actor, data):
        """Give back the bed reserved for a requested admission."""
        inpatient.release_reservation(db, pk, actor=actor)

    @expose("/request", methods=["GET", "POST"])
    async def page_request(self, request: Request) -> Response:
        """The doctor's "Request admission" form (calls ``inpatient.request_admission``)."""
        self.require_permission(request, "request")
        actor = self.actor(request)
        doctor_id = await run_in_threadpool(_doctor_of, self.engine, actor.username)
        form = RequestAdmissionForm(formdata=None, data={"doctor_id": doctor_id})
        status_code = 200
        if request.method == "POST":
            posted = await posted_form(request)
            self.require_csrf(request, posted)
            form = RequestAdmissionForm(formdata=posted)
        await run_in_threadpool(_fill_admit_choices, self.engine, form)
        if request.method == "POST":
            if form.validate():
                try:
                    message = await run_in_threadpool(
                        run_in_transaction, _request_from_form, engine=self.engine, actor=actor, data=form.data)
                except DomainError as exc:
                    attach_service_error(form, exc)
                else:
                    Flash.success(request, message)
                    return RedirectResponse(request.url_for("admin:view-bed-board"), status_code=303)
            status_code = 400
        form.patient_id.lookup_url = str(request.url_for(f"admin:view-{self.identity}-page_request_lookup"))
        return await self.render(request, "portal/form_page.html", {
            "heading": "Request admission", "form": form, "facts": [],
            "action_url": str(request.url_for(f"admin:view-{self.identity}-page_request")),
            "submit": "Request", "back_url": str(request.url_for("admin:view-bed-board")),
        }, status_code=status_code)

    @expose("/request-lookup", methods=["GET"])
    async def page_request_lookup(self, request: Request) -> Response:
        """Search answers for the request page's patient picker (``term`` = text)."""
        self.require_permission(request, "request")
        term = request.query_params.get("term", "").strip()[:60]
        results = await run_in_threadpool(lookup_results, self.engine, "patient_id", term)
        return JSONResponse({"results": results})

    @row_action("transfer", "Transfer", done="transferred", form=TransferForm, preview=_free_bed_choices("to_bed_id"),
                explain="The patient moves to the chosen free bed; the old bed goes to cleaning. "
                "The move is kept in the transfer history.")
    def action_transfer(self, db, pk, *, actor, data):
        """Move the patient to another bed."""
        move = inpatient.transfer(db, pk, to_bed_id=data["to_bed_id"], reason=data["reason"], actor=actor)
        return f"to {db.get(Bed, move.to_bed_id).code}"

    @row_action("order-discharge", "Order discharge", done="ordered for discharge", form=OrderDischargeForm,
                explain="The doctor's discharge order. The bed stays occupied until the final discharge.")
    def action_order_discharge(self, db, pk, *, actor, data):
        """Order the discharge (the bed is kept)."""
        inpatient.order_discharge(db, pk, actor=actor, note=data.get("note"))

    @row_action("discharge", "Discharge", done="discharged", form=DischargeForm, preview=_discharge_preview,
                explain="The patient leaves: the admission is closed and the bed goes to cleaning.")
    def action_discharge(self, db, pk, *, actor, data):
        """The final discharge (the bed goes to cleaning)."""
        inpatient.discharge(db, pk, actor=actor, override_reason=data.get("override_reason") or None)

    @row_action("cancel", "Cancel", done="cancelled", form=CancelAdmissionForm, danger=True,
                explain="Each selected requested admission is cancelled with the reason below.")
    def action_cancel(self, db, pk, *, actor, data):
        """Cancel a requested admission."""
        inpatient.cancel(db, pk, actor=actor, reason=data["reason"])


class BedTransferView(PortalModelView, model=BedTransfer):
    """The history of bed transfers (append-only)."""

    name = "Bed transfer"
    name_plural = "Bed transfers"
    icon = "fa-solid fa-right-left"
    category = CATEGORY
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [BedTransfer.transferred_at, BedTransfer.admission, BedTransfer.from_bed, BedTransfer.to_bed,
                   BedTransfer.transferred_by, BedTransfer.reason]
    column_labels = {BedTransfer.transferred_at: "At", BedTransfer.transferred_by: "By",
                     BedTransfer.from_bed: "From bed", BedTransfer.to_bed: "To bed"}
    column_sortable_list = [BedTransfer.transferred_at]
    column_default_sort = [(BedTransfer.id, True)]
    column_searchable_list = [BedTransfer.transferred_by, BedTransfer.reason]


class InpatientNoteView(PortalModelView, model=InpatientNote):
    """Ward notes and vitals on an admission (append-only; written through
    ``inpatient.record_note``, which stamps the time and the author)."""

    name = "Inpatient note"
    name_plural = "Inpatient notes"
    icon = "fa-solid fa-notes-medical"
    category = CATEGORY
    can_edit = False
    can_delete = False
    column_list = [InpatientNote.written_at, InpatientNote.admission, InpatientNote.author, InpatientNote.note,
                   InpatientNote.temperature_dc, InpatientNote.pulse, InpatientNote.systolic, InpatientNote.diastolic,
                   InpatientNote.respiratory_rate, InpatientNote.spo2]
    column_labels = {
        InpatientNote.written_at: "Written", InpatientNote.temperature_dc: "Temp (0.1 \u00b0C)",
        InpatientNote.pulse: "Pulse (/min)", InpatientNote.systolic: "Sys (mmHg)", InpatientNote.diastolic: "Dia (mmHg)",
        InpatientNote.respiratory_rate: "Resp (/min)", InpatientNote.spo2: "SpO2 (%)",
    }
    column_searchable_list = [InpatientNote.author, InpatientNote.note]
    column_sortable_list = [InpatientNote.written_at]
    column_default_sort = [(InpatientNote.id, True)]
    column_filters = [*date_range(InpatientNote.written_at, "Written")]
    form_columns = [InpatientNote.admission, InpatientNote.note, InpatientNote.temperature_dc, InpatientNote.pulse,
                    InpatientNote.systolic, InpatientNote.diastolic, InpatientNote.respiratory_rate, InpatientNote.spo2]
    form_args = {
        name: {"label": label, "description": f"Optional; {low} to {high}."}
        for name, (low, high, label) in inpatient.VITAL_RANGES.items()
    }
    form_args["note"] = {"label": "Note"}
    form_overrides = {"note": TextAreaField}

    async def insert_model(self, request: Request, data: dict) -> Any:
        """Write the note with ``inpatient.record_note`` (time and author set there, audited)."""
        data = dict(data)
        admission = data.get("admission")
        admission_id = getattr(admission, "id", admission)
        vitals = {name: data.get(name) for name in inpatient.VITAL_RANGES}
        engine = self.session_maker.kw["bind"]
        actor = current_actor.get() or SYSTEM
        try:
            return await run_in_threadpool(
                run_in_transaction, inpatient.record_note, int(admission_id) if admission_id not in (None, "") else None,
                engine=engine, actor=actor, note=data.get("note") or "", **vitals)
        except DomainError as exc:
            raise FormRefusal(exc.message) from None


class BedBoardView(BaseView):
    """The bed board: every ward's beds with their state and patient, the counts free and
    occupied, and the actions from there (admit to this bed, transfer, discharge, mark cleaned)."""

    name = "Bed board"
    icon = "fa-solid fa-table-cells"
    category = CATEGORY

    @expose("/bed-board", identity="bed-board")
    async def page(self, request: Request) -> Response:
        """GET: the board."""
        engine = self._admin_ref.engine
        wards, waiting = await run_in_threadpool(_board, engine)
        role = role_of(request)
        can = {slug: permissions.may_act(role, entity, slug) for entity, slug in (
            ("bed", "admit"), ("bed", "mark-cleaned"), ("admission", "transfer"),
            ("admission", "order-discharge"), ("admission", "discharge"), ("admission", "request"),
            ("admission", "reserve-bed"), ("admission", "release-bed"))}
        can["admit-requested"] = permissions.may_act(role, "admission", "admit")
        since = {b.id: local_datetime(b.since) for w in wards for b in w.beds if b.since}
        since.update({f"w{a.id}": local_datetime(a.requested_at) for a in waiting})
        return await self.templates.TemplateResponse(request, "inpatient/bed_board.html", {
            "title": "Bed board", "wards": wards, "can": can, "since": since, "waiting": waiting,
        })


def _board(engine: Engine) -> tuple[list[Any], list[Any]]:
    with transaction(engine, write=False) as db:
        return bed_board(db), waiting_for_a_bed(db)


INPATIENT_VIEWS = [BedBoardView, AdmissionView, InpatientNoteView, WardView, RoomView, BedView, BedTransferView]
