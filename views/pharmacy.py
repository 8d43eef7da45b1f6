"""Admin screens for medicines, suppliers, stock batches, the stock ledger and prescriptions."""

from __future__ import annotations

from sqladmin import expose
from sqladmin.filters import BooleanFilter, ForeignKeyFilter, StaticValuesFilter
from sqladmin.flash import Flash
from sqladmin.pagination import Pagination
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from models import (
    BatchStatus,
    Doctor,
    Medicine,
    MovementKind,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    StockBatch,
    StockMovement,
    Supplier,
)
from portal.core import clock
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import DomainError
from portal.services import dashboard, dispensing, stock, stock_terms
from views._access import by_role
from views._actions import ActionsMixin, PageLink, page_action, row_action
from views._base import PortalModelView, date_range, enum_choices, money
from views._dispensing import DispenseForm, dispense_preview, dispensed_detail
from views._filters import ColumnFilter, PresetFilter, SearchableForeignKeyFilter
from views._forms import parse_id, posted_form, reason_form
from views._stock import (
    BelowReorderLevelFilter,
    CountForm,
    ExpiringSoonFilter,
    ReceiveForm,
    count_from_form,
    fill_receive_choices,
    medicine_choices,
    next_expiry_cell,
    receive_from_form,
    stock_by_medicine,
    usable_stock_cell,
)

#: Reasons on stock batches and prescriptions are stored with at most 255 characters.
PharmacyReasonForm = reason_form(max_length=255)


class MedicineView(ActionsMixin, PortalModelView, model=Medicine):
    """Stock items (one per medicine, form and strength), with their usable stock and
    next expiry (one query per list page) and the reorder / near-expiry filters."""

    name = "Medicine"
    name_plural = "Medicines"
    icon = "fa-solid fa-pills"
    category = "Pharmacy"
    column_list = [Medicine.name, Medicine.strength, "usable_stock", "next_expiry", Medicine.reorder_level, Medicine.form, Medicine.unit, Medicine.unit_price, Medicine.is_controlled, Medicine.is_active]
    column_labels = {"usable_stock": "Usable stock", "next_expiry": "Next expiry", Medicine.reorder_level: "Reorder level", Medicine.unit: "Dispensing unit", Medicine.is_controlled: "Controlled"}
    column_export_list = [Medicine.name, Medicine.strength, Medicine.form, Medicine.unit, Medicine.category, Medicine.reorder_level, Medicine.unit_price, Medicine.is_controlled, Medicine.is_active]
    column_searchable_list = [Medicine.name, Medicine.category]
    column_sortable_list = [Medicine.name, Medicine.form, Medicine.category, Medicine.reorder_level, Medicine.unit_price]
    column_default_sort = [(Medicine.name, False)]
    column_filters = [
        BelowReorderLevelFilter(),
        ExpiringSoonFilter(),
        BooleanFilter(Medicine.is_active, title="Active"),
        BooleanFilter(Medicine.is_controlled, title="Controlled"),
        ColumnFilter(Medicine.category, title="Category"),
        ColumnFilter(Medicine.form, title="Form"),
    ]
    column_formatters = {
        "usable_stock": usable_stock_cell,
        "next_expiry": next_expiry_cell,
    }
    money_columns = ("unit_price",)
    form_columns = [Medicine.name, Medicine.form, Medicine.strength, Medicine.unit, Medicine.category, Medicine.is_controlled, Medicine.reorder_level, Medicine.unit_price, Medicine.is_active]
    form_args = {
        "unit_price": {"description": "Price of one dispensing unit in yuan, e.g. 0.35"},
        "reorder_level": {"description": "Reorder when usable stock falls to this many dispensing units"},
    }
    constraint_messages = {
        "uq_medicine_name_form_strength": "This medicine already exists in that form and strength.",
        "ck_medicine_reorder": "The reorder level cannot be negative.",
        "ck_medicine_price": "The price cannot be negative.",
    }
    delete_blockers = [(StockBatch.medicine_id, "stock batch"), (PrescriptionItem.medicine_id, "prescription line")]

    async def list(self, request: Request) -> Pagination:
        """The list page, with usable stock and next expiry of its rows fetched in one query."""
        pagination = await super().list(request)
        ids = [m.id for m in pagination.rows]
        request.state.medicine_stock = await run_in_threadpool(stock_by_medicine, self.engine, ids)
        return pagination

    def validate_model(self, data, model, is_created):
        """Reorder level and price are not negative."""
        for field in ("reorder_level", "unit_price"):
            if data.get(field) is not None and data[field] < 0:
                raise ValueError(f"{field.replace('_', ' ').capitalize()} cannot be negative.")


class SupplierView(PortalModelView, model=Supplier):
    """Suppliers of stock."""

    name = "Supplier"
    name_plural = "Suppliers"
    icon = "fa-solid fa-truck-medical"
    category = "Pharmacy"
    column_list = [Supplier.name, Supplier.contact_name, Supplier.phone, Supplier.email, Supplier.is_active]
    column_searchable_list = [Supplier.name, Supplier.contact_name, Supplier.phone]
    column_sortable_list = [Supplier.name, Supplier.contact_name, Supplier.is_active]
    column_default_sort = [(Supplier.name, False)]
    column_filters = [BooleanFilter(Supplier.is_active, title="Active")]
    form_columns = [Supplier.name, Supplier.contact_name, Supplier.phone, Supplier.email, Supplier.address, Supplier.is_active]
    constraint_messages = {"name": "Another supplier already has this name."}
    delete_blockers = [(StockBatch.supplier_id, "stock batch")]


def _write_off_preview(view, db, rows, form, user) -> dict[int, str]:
    """Per batch: what the write-off removes, and whether it has expired yet."""
    today = clock.today()
    notes = {}
    for batch in rows:
        unit = batch.medicine.unit if batch.medicine else "units"
        when = (f"expired on {batch.expiry_date}" if batch.expiry_date <= today
                else f"not expired yet (expires {batch.expiry_date})")
        notes[batch.id] = (f"{batch.quantity_on_hand} {unit} will be written off "
                           f"(value {money(batch.quantity_on_hand * batch.unit_cost)}); {when}.")
    return notes


class StockBatchView(ActionsMixin, PortalModelView, model=StockBatch):
    """Stock batches (lots). Batches come from the receive service, and quantities and
    status change only through the stock services (dispense, write-off, quarantine,
    release, adjust), so the generic forms are off."""

    name = "Stock batch"
    name_plural = "Stock batches"
    icon = "fa-solid fa-boxes-stacked"
    category = "Pharmacy"
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [StockBatch.medicine, StockBatch.lot_number, StockBatch.expiry_date, StockBatch.status, StockBatch.quantity_on_hand, StockBatch.quantity_received, StockBatch.unit_cost, StockBatch.supplier]
    column_labels = {StockBatch.quantity_on_hand: "On hand", StockBatch.quantity_received: "Received", StockBatch.received_at: "Received at"}
    column_searchable_list = [StockBatch.lot_number, "medicine.name"]
    column_sortable_list = [StockBatch.expiry_date, StockBatch.quantity_on_hand, StockBatch.lot_number, StockBatch.status, StockBatch.received_at]
    column_default_sort = [(StockBatch.expiry_date, False)]
    column_filters = [
        StaticValuesFilter(StockBatch.status, values=enum_choices(BatchStatus)),
        *date_range(StockBatch.expiry_date, "Expiry date"),
        ForeignKeyFilter(StockBatch.supplier_id, Supplier.name, title="Supplier"),
        PresetFilter("expiry", "Needs attention", {
            "soon": (f"Active, expires within {stock_terms.expiry_window_days()} days",
                     lambda: stock_terms.batch_expiring_within(clock.today())),
            "past": ("Active, already past expiry", lambda: stock_terms.batch_expired_but_active(clock.today())),
        }),
    ]
    money_columns = ("unit_cost",)
    page_links = [PageLink("receive", "Receive stock", "page_receive")]

    def row_label(self, row: StockBatch) -> str:
        """``lot L123 of Amoxicillin 500 mg Capsule``."""
        medicine = row.__dict__.get("medicine")
        return f"lot {row.lot_number}" + (f" of {medicine}" if medicine else "")

    def row_mention(self, row: StockBatch, message: str) -> str | None:
        """Stock messages name a batch as ``batch <lot> of <medicine>``."""
        medicine = row.__dict__.get("medicine")
        for mention in (f"batch {row.lot_number} of {medicine}", row.lot_number):
            if mention in message:
                return mention
        return None

    # -- workflow actions ---------------------------------------------------------------
    @row_action("expire", "Mark expired", done="written off as expired", danger=True,
                title="Write off {count} {noun} as expired", preview=_write_off_preview,
                explain="What remains of each selected batch is written off (an expiry write-off in the "
                "stock ledger) and the batch is never dispensed again. Take the packs off the shelf "
                "for destruction or return.")
    def action_expire(self, db, pk, *, actor, data):
        """Write off what remains of a batch as expired."""
        stock.mark_batch_expired(db, batch_id=pk, actor=actor)

    @row_action("quarantine", "Quarantine", done="quarantined", form=PharmacyReasonForm,
                explain="The selected batches are held back from dispensing (suspected quality problem, "
                "damaged packaging, cold chain break) until released or written off.")
    def action_quarantine(self, db, pk, *, actor, data):
        """Hold a batch back from dispensing."""
        stock.quarantine_batch(db, batch_id=pk, actor=actor, reason=data["reason"])

    @row_action("release", "Release", done="released", form=PharmacyReasonForm,
                title="Release {count} {noun} from quarantine",
                explain="The selected quarantined batches can be dispensed again. A batch past its "
                "expiry date is never released: write it off instead.")
    def action_release(self, db, pk, *, actor, data):
        """Release a quarantined batch back to dispensing stock."""
        stock.release_batch(db, batch_id=pk, actor=actor, reason=data["reason"])

    open_count = page_action("count", "Stock count", endpoint="page_count")

    # -- custom pages ----------------------------------------------------------------------
    @expose("/receive", methods=["GET", "POST"])
    async def page_receive(self, request: Request) -> Response:
        """Receive a delivery of one lot into stock (calls ``stock.receive_stock``)."""
        self.require_permission(request, "receive")
        form = ReceiveForm(formdata=None)
        status_code = 200
        if request.method == "POST":
            posted = await posted_form(request)
            self.require_csrf(request, posted)
            form = ReceiveForm(formdata=posted)
            await run_in_threadpool(fill_receive_choices, self.engine, form)
            if form.validate():
                try:
                    batch_id, message = await run_in_threadpool(
                        run_in_transaction, receive_from_form, engine=self.engine,
                        actor=self.actor(request), data=form.data,
                    )
                except DomainError as exc:
                    form.attach_service_error(exc)
                else:
                    Flash.success(request, message)
                    return RedirectResponse(
                        request.url_for("admin:details", identity=self.identity, pk=batch_id), status_code=303)
            status_code = 400
        else:
            await run_in_threadpool(fill_receive_choices, self.engine, form)
        form.medicine_id.lookup_url = str(request.url_for(f"admin:view-{self.identity}-page_receive_lookup"))
        return await self.render(request, "portal/form_page.html", {
            "heading": "Receive stock", "form": form, "submit": "Receive stock",
            "intro": "One lot of one medicine per delivery line. If the lot is already in stock, "
                     "the quantity is added to it.",
            "action_url": request.url_for(f"admin:view-{self.identity}-page_receive"),
            "back_url": request.url_for("admin:list", identity=self.identity),
        }, status_code=status_code)

    @expose("/receive/lookup", methods=["GET"])
    async def page_receive_lookup(self, request: Request) -> Response:
        """Search answers for the receive page's medicine picker."""
        self.require_permission(request, "receive")
        term = request.query_params.get("term", "").strip()[:60]
        results = []
        if request.query_params.get("name") == "medicine_id":
            results = await run_in_threadpool(medicine_choices, self.engine, term)
        return JSONResponse({"results": results})

    @expose("/count/{pk}", methods=["GET", "POST"])
    async def page_count(self, request: Request) -> Response:
        """Stocktake of one batch: record the counted quantity (calls ``stock.adjust_stock``)."""
        self.require_permission(request, "count")
        batch_id = parse_id(request.path_params["pk"])
        if batch_id is None:
            raise HTTPException(status_code=404)
        batch = await run_in_threadpool(self._load_batch, batch_id)
        form = CountForm(formdata=None)
        status_code = 200
        if request.method == "POST":
            posted = await posted_form(request)
            self.require_csrf(request, posted)
            form = CountForm(formdata=posted)
            if form.validate():
                try:
                    message = await run_in_threadpool(
                        run_in_transaction, count_from_form, engine=self.engine, batch_id=batch_id,
                        actor=self.actor(request), data=form.data,
                    )
                except DomainError as exc:
                    form.attach_service_error(exc)
                else:
                    Flash.success(request, f"Lot {batch.lot_number} of {batch.medicine}: {message}")
                    return RedirectResponse(
                        request.url_for("admin:details", identity=self.identity, pk=batch_id), status_code=303)
            status_code = 400
        unit = batch.medicine.unit
        return await self.render(request, "portal/form_page.html", {
            "heading": f"Stock count: lot {batch.lot_number} of {batch.medicine}", "form": form,
            "submit": "Record the count",
            "facts": [("Medicine", str(batch.medicine)), ("Lot", batch.lot_number),
                      ("Expiry date", batch.expiry_date.isoformat()), ("Status", batch.status.value),
                      ("On hand in the system", f"{batch.quantity_on_hand} {unit}")],
            "intro": "Count what is physically on the shelf for this lot. A difference is recorded as a "
                     "stock adjustment with your reason.",
            "action_url": request.url_for(f"admin:view-{self.identity}-page_count", pk=str(batch_id)),
            "back_url": request.url_for("admin:details", identity=self.identity, pk=str(batch_id)),
        }, status_code=status_code)

    def _load_batch(self, batch_id: int) -> StockBatch:
        with transaction(self.engine, write=False) as db:
            batch = db.get(StockBatch, batch_id, options=[selectinload(StockBatch.medicine)])
            if batch is None:
                raise HTTPException(status_code=404, detail="This stock batch does not exist.")
            return batch


class StockMovementView(PortalModelView, model=StockMovement):
    """The stock ledger: append-only and read-only."""

    name = "Stock movement"
    name_plural = "Stock movements"
    icon = "fa-solid fa-right-left"
    category = "Pharmacy"
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [StockMovement.created_at, StockMovement.kind, StockMovement.medicine, StockMovement.batch, StockMovement.quantity, StockMovement.balance_after, StockMovement.note]
    column_labels = {StockMovement.created_at: "When", StockMovement.balance_after: "Balance after", StockMovement.batch: "Batch"}
    column_sortable_list = [StockMovement.created_at, StockMovement.kind, StockMovement.quantity]
    column_default_sort = [(StockMovement.id, True)]
    column_filters = [
        StaticValuesFilter(StockMovement.kind, values=enum_choices(MovementKind)),
        *date_range(StockMovement.created_at, "Date"),
        ColumnFilter(StockMovement.batch_id, title="Batch id"),
    ]
    column_searchable_list = [StockMovement.note, "batch.lot_number", "medicine.name"]
    money_columns = ("unit_cost",)


class PrescriptionView(ActionsMixin, PortalModelView, model=Prescription):
    """Prescriptions. Status changes only through dispensing and cancelling."""

    name = "Prescription"
    name_plural = "Prescriptions"
    icon = "fa-solid fa-prescription"
    category = "Pharmacy"
    column_list = [Prescription.number, Prescription.created_at, Prescription.patient, Prescription.doctor, Prescription.diagnosis, Prescription.status]
    column_labels = {Prescription.created_at: "Written"}
    column_searchable_list = [Prescription.number, "patient.full_name", "patient.medical_record_number"]
    column_sortable_list = [Prescription.created_at, Prescription.number, Prescription.status]
    column_default_sort = [(Prescription.id, True)]
    column_filters = [
        StaticValuesFilter(Prescription.status, values=enum_choices(PrescriptionStatus)),
        SearchableForeignKeyFilter(Prescription.doctor_id, Doctor.full_name, title="Doctor"),
        *date_range(Prescription.created_at, "Date"),
        PresetFilter("dispensing", "Dispensing", {
            "waiting": ("Waiting (issued or partly dispensed)", dashboard.prescriptions_waiting_condition),
        }),
    ]
    column_details_list = [Prescription.number, Prescription.status, Prescription.patient, Prescription.doctor, Prescription.appointment, Prescription.diagnosis, Prescription.items, Prescription.notes, Prescription.created_at, Prescription.dispensed_at]
    form_columns = [Prescription.number, Prescription.patient, Prescription.doctor, Prescription.appointment, Prescription.diagnosis, Prescription.notes]
    form_ajax_refs = {
        "patient": {"fields": ("full_name", "medical_record_number", "phone"), "order_by": "id"},
        "diagnosis": {"fields": ("code", "title"), "order_by": "code"},
        "appointment": {"fields": ("reference",), "order_by": "id"},
        "doctor": {"fields": ("full_name",), "order_by": "full_name"},
    }
    constraint_messages = {"number": "Another prescription already has this number."}
    owner_field = "doctor"

    def scope(self, request, stmt):
        """Doctors see (and write) only their own prescriptions."""
        return by_role(request, stmt, doctor=lambda me: Prescription.doctor_id == me.doctor_id)

    delete_blockers = [(PrescriptionItem.prescription_id, "medicine line")]
    action_columns = [Prescription.number, Prescription.created_at, Prescription.patient, Prescription.doctor, Prescription.status]

    def details_query(self, request):
        """The detail page loads the lines and their medicines in one go."""
        return super().details_query(request).options(
            selectinload(Prescription.items).selectinload(PrescriptionItem.medicine)
        )

    # -- workflow actions ---------------------------------------------------------------
    def label_relations(self, relations: list) -> list:
        """Prescriptions are named by their number: an action's POST loads no related rows."""
        return []

    @row_action("dispense", "Dispense", done="dispensed", form=DispenseForm, preview=dispense_preview,
                explain="Everything still owed on each selected prescription is taken from usable stock, "
                "earliest expiry first. A prescription that stock cannot cover in full is skipped and "
                "nothing is taken for it (use \u201cDispense available\u201d to hand out what there is).")
    def action_dispense(self, db, pk, *, actor, data):
        """Dispense a prescription in full, or nothing."""
        result = dispensing.dispense(db, prescription_id=pk, actor=actor, witness_id=data.get("witness_id"))
        return dispensed_detail(result)

    @row_action("dispense-partial", "Dispense available (partial)", done="dispensed as far as stock allows",
                title="Dispense what is available for {count} {noun}", form=DispenseForm, preview=dispense_preview,
                explain="Hands out what usable stock allows now, earliest expiry first; the rest stays owed "
                "and the prescription becomes partially dispensed.")
    def action_dispense_partial(self, db, pk, *, actor, data):
        """Dispense what usable stock allows; the rest stays owed."""
        result = dispensing.dispense(
            db, prescription_id=pk, actor=actor, partial=True, witness_id=data.get("witness_id"))
        return dispensed_detail(result)

    @row_action("cancel", "Cancel prescription", done="cancelled", form=PharmacyReasonForm, danger=True,
                title="Cancel {count} {noun}",
                explain="Cancels each selected prescription from which nothing has been dispensed yet.")
    def action_cancel(self, db, pk, *, actor, data):
        """Cancel a prescription from which nothing was dispensed."""
        dispensing.cancel_prescription(db, prescription_id=pk, actor=actor, reason=data["reason"])


class PrescriptionItemView(PortalModelView, model=PrescriptionItem):
    """Medicine lines of prescriptions. ``quantity_dispensed`` changes only by dispensing."""

    name = "Prescription line"
    name_plural = "Prescription lines"
    icon = "fa-solid fa-list"
    category = "Pharmacy"
    column_list = [PrescriptionItem.prescription, PrescriptionItem.medicine, PrescriptionItem.quantity, PrescriptionItem.quantity_dispensed, PrescriptionItem.dosage, PrescriptionItem.duration_days]
    column_labels = {PrescriptionItem.quantity_dispensed: "Dispensed", PrescriptionItem.duration_days: "Days"}
    column_sortable_list = [PrescriptionItem.id, PrescriptionItem.quantity]
    column_default_sort = [(PrescriptionItem.id, True)]
    column_searchable_list = [PrescriptionItem.dosage, "prescription.number", "medicine.name"]
    form_columns = [PrescriptionItem.prescription, PrescriptionItem.medicine, PrescriptionItem.quantity, PrescriptionItem.dosage, PrescriptionItem.duration_days]
    form_ajax_refs = {
        "prescription": {"fields": ("number",), "order_by": "id"},
        "medicine": {"fields": ("name", "strength", "form"), "order_by": "name"},
    }
    constraint_messages = {"ck_prescription_item_quantity": "The quantity must be at least 1."}
    delete_blockers = [(StockMovement.prescription_item_id, "stock movement")]

    def scope(self, request, stmt):
        """Doctors see (and write) only the lines of their own prescriptions."""
        return by_role(
            request, stmt,
            doctor=lambda me: PrescriptionItem.prescription_id.in_(
                select(Prescription.id).where(Prescription.doctor_id == me.doctor_id)
            ),
        )

    def validate_model(self, data, model, is_created):
        """Quantity at least 1 and not below what was already dispensed."""
        if data.get("quantity") is not None and data["quantity"] < 1:
            raise ValueError("The quantity must be at least 1.")
        if not is_created and model.quantity_dispensed and data.get("quantity", model.quantity) < model.quantity_dispensed:
            raise ValueError("The quantity cannot be lower than what was already dispensed.")
