"""Admin screens for medicines, suppliers, stock batches, the stock ledger and prescriptions."""

from __future__ import annotations

from sqladmin.filters import BooleanFilter, ForeignKeyFilter, OperationColumnFilter, StaticValuesFilter

from models import (
    BatchStatus,
    Medicine,
    MovementKind,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    StockBatch,
    StockMovement,
    Supplier,
)
from sqlalchemy.orm import selectinload

from portal.services import dashboard, reports
from views._base import LocalDateTimeFilter, PortalModelView, money
from views._filters import PresetFilter


class MedicineView(PortalModelView, model=Medicine):
    """Stock items (one per medicine, form and strength)."""

    name = "Medicine"
    name_plural = "Medicines"
    icon = "fa-solid fa-pills"
    category = "Pharmacy"
    column_list = [Medicine.name, Medicine.strength, Medicine.form, Medicine.unit, Medicine.category, Medicine.reorder_level, Medicine.unit_price, Medicine.is_controlled, Medicine.is_active]
    column_searchable_list = [Medicine.name, Medicine.category]
    column_sortable_list = [Medicine.name, Medicine.form, Medicine.reorder_level, Medicine.unit_price]
    column_default_sort = [(Medicine.name, False)]
    column_filters = [
        BooleanFilter(Medicine.is_active, title="Active"),
        BooleanFilter(Medicine.is_controlled, title="Controlled"),
        OperationColumnFilter(Medicine.category, title="Category"),
        OperationColumnFilter(Medicine.form, title="Form"),
        PresetFilter("stock", "Stock", {
            "below_reorder": ("Below reorder level", lambda: dashboard.below_reorder_condition(reports.local_now().date())),
        }),
    ]
    column_formatters = {Medicine.unit_price: lambda m, a: money(m.unit_price)}
    form_columns = [Medicine.name, Medicine.form, Medicine.strength, Medicine.unit, Medicine.category, Medicine.is_controlled, Medicine.reorder_level, Medicine.unit_price, Medicine.is_active]
    form_args = {"unit_price": {"description": "Price of one dispensing unit, smallest currency unit"}}
    constraint_messages = {
        "uq_medicine_name_form_strength": "This medicine already exists in that form and strength.",
        "medicine.name": "This medicine already exists in that form and strength.",
        "ck_medicine_reorder": "The reorder level cannot be negative.",
        "ck_medicine_price": "The price cannot be negative.",
    }
    delete_blockers = [(StockBatch.medicine_id, "stock batches"), (PrescriptionItem.medicine_id, "prescription lines")]

    def validate_model(self, data, model, is_created):
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
    column_sortable_list = [Supplier.name]
    column_filters = [BooleanFilter(Supplier.is_active, title="Active")]
    form_columns = [Supplier.name, Supplier.contact_name, Supplier.phone, Supplier.email, Supplier.address, Supplier.is_active]
    constraint_messages = {"name": "Another supplier already has this name."}
    delete_blockers = [(StockBatch.supplier_id, "stock batches")]


class StockBatchView(PortalModelView, model=StockBatch):
    """Stock batches (lots). Quantities and status change only through the stock
    services (receive, dispense, write-off, adjust), so the generic forms are off."""

    name = "Stock batch"
    name_plural = "Stock batches"
    icon = "fa-solid fa-boxes-stacked"
    category = "Pharmacy"
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [StockBatch.medicine, StockBatch.lot_number, StockBatch.expiry_date, StockBatch.quantity_on_hand, StockBatch.quantity_received, StockBatch.unit_cost, StockBatch.status, StockBatch.supplier]
    column_labels = {StockBatch.quantity_on_hand: "On hand", StockBatch.quantity_received: "Received"}
    column_searchable_list = [StockBatch.lot_number]
    column_sortable_list = [StockBatch.expiry_date, StockBatch.quantity_on_hand, StockBatch.lot_number]
    column_default_sort = [(StockBatch.expiry_date, False)]
    column_filters = [
        StaticValuesFilter(StockBatch.status, values=[(s.value, s.value.title()) for s in BatchStatus]),
        OperationColumnFilter(StockBatch.expiry_date, title="Expiry date"),
        ForeignKeyFilter(StockBatch.supplier_id, Supplier.name, title="Supplier"),
        PresetFilter("expiry", "Needs attention", {
            "soon": (f"Active, expires within {dashboard.EXPIRY_ALERT_DAYS} days",
                     lambda: dashboard.expiring_condition(reports.local_now().date())),
            "past": ("Active, already past expiry", lambda: dashboard.expired_active_condition(reports.local_now().date())),
        }),
    ]
    column_formatters = {StockBatch.unit_cost: lambda m, a: money(m.unit_cost)}


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
    column_sortable_list = [StockMovement.created_at, StockMovement.quantity]
    column_default_sort = [(StockMovement.id, True)]
    column_filters = [
        StaticValuesFilter(StockMovement.kind, values=[(k.value, k.value.replace("_", " ").title()) for k in MovementKind]),
        LocalDateTimeFilter(StockMovement.created_at, title="Date"),
        OperationColumnFilter(StockMovement.batch_id, title="Batch id"),
    ]
    column_searchable_list = [StockMovement.note]


class PrescriptionView(PortalModelView, model=Prescription):
    """Prescriptions. Status changes only through dispensing and cancelling."""

    name = "Prescription"
    name_plural = "Prescriptions"
    icon = "fa-solid fa-prescription"
    category = "Pharmacy"
    column_list = [Prescription.number, Prescription.created_at, Prescription.patient, Prescription.doctor, Prescription.diagnosis, Prescription.status]
    column_searchable_list = [Prescription.number]
    column_sortable_list = [Prescription.created_at, Prescription.number, Prescription.status]
    column_default_sort = [(Prescription.id, True)]
    column_filters = [
        StaticValuesFilter(Prescription.status, values=[(s.value, s.value.replace("_", " ").title()) for s in PrescriptionStatus]),
        LocalDateTimeFilter(Prescription.created_at, title="Date"),
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

    def details_query(self, request):
        return super().details_query(request).options(
            selectinload(Prescription.items).selectinload(PrescriptionItem.medicine)
        )
    delete_blockers = [(PrescriptionItem.prescription_id, "medicine lines")]


class PrescriptionItemView(PortalModelView, model=PrescriptionItem):
    """Medicine lines of prescriptions. ``quantity_dispensed`` changes only by dispensing."""

    name = "Prescription line"
    name_plural = "Prescription lines"
    icon = "fa-solid fa-list"
    category = "Pharmacy"
    column_list = [PrescriptionItem.prescription, PrescriptionItem.medicine, PrescriptionItem.quantity, PrescriptionItem.quantity_dispensed, PrescriptionItem.dosage, PrescriptionItem.duration_days]
    column_sortable_list = [PrescriptionItem.id, PrescriptionItem.quantity]
    column_default_sort = [(PrescriptionItem.id, True)]
    column_searchable_list = [PrescriptionItem.dosage]
    form_columns = [PrescriptionItem.prescription, PrescriptionItem.medicine, PrescriptionItem.quantity, PrescriptionItem.dosage, PrescriptionItem.duration_days]
    form_ajax_refs = {
        "prescription": {"fields": ("number",), "order_by": "id"},
        "medicine": {"fields": ("name", "strength", "form"), "order_by": "name"},
    }
    constraint_messages = {"ck_prescription_item_quantity": "The quantity must be at least 1."}

    def validate_model(self, data, model, is_created):
        if data.get("quantity") is not None and data["quantity"] < 1:
            raise ValueError("The quantity must be at least 1.")
        if not is_created and model.quantity_dispensed and data.get("quantity", model.quantity) < model.quantity_dispensed:
            raise ValueError("The quantity cannot be lower than what was already dispensed.")

