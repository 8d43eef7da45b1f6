"""Pieces of the pharmacy stock screens: the receive-stock and stock-count forms, the
medicine picker, and the medicine list's stock columns and filters.

The screens call ``portal.services.stock``; nothing here changes stock.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.requests import Request
from wtforms import DateField, DecimalField, Form, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from models import BatchStatus, Medicine, StockBatch, Supplier
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.errors import DomainError
from portal.services import stock, stock_terms
from portal.services._ledger import MAX_COUNT
from views._forms import LookupField, WholeNumberRange, attach_service_error

LOOKUP_LIMIT = 20
#: Largest unit cost (in currency units) that fits the stock columns in smallest units.
MAX_COST = Decimal(MAX_COUNT) / 100


def _int_or_none(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(value)


class _IsoDateField(DateField):
    """A YYYY-MM-DD date with a readable error."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the date; say how to write it when it cannot be read."""
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter the date as YYYY-MM-DD, e.g. 2027-03-31.") from None


class _AmountField(DecimalField):
    """A decimal amount; "NaN", "Infinity" and the like are refused as not numbers."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the amount; only finite numbers are amounts."""
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError(self.gettext("Not a valid decimal value."))


def cents(value: Decimal) -> int:
    """An amount in currency units (``Decimal("0.35")``) as smallest units (35)."""
    return int((value * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


class ReceiveForm(Form):
    """A delivery of one lot of one medicine."""

    medicine_id = LookupField("Medicine", [InputRequired("Choose the medicine.")],
                              placeholder="Type the medicine's name")
    lot_number = StringField("Lot number", [DataRequired("Enter the lot number printed on the pack."),
                                            Length(max=40, message="A lot number has at most 40 characters.")])
    expiry_date = _IsoDateField("Expiry date", [InputRequired("Enter the expiry date printed on the pack.")],
                                render_kw={"data-role": "datepicker", "placeholder": "YYYY-MM-DD"})
    quantity = IntegerField("Quantity received", [InputRequired("Enter the quantity received."),
                                                  WholeNumberRange(min=1, message="Receive at least 1 unit."),
                                                  WholeNumberRange(max=MAX_COUNT, message=f"Receive at most {MAX_COUNT:,} units.")],
                            description="In dispensing units (tablets, ampoules, bottles...), not packs.")
    unit_cost = _AmountField("Cost of one unit", [InputRequired("Enter the cost of one unit."),
                                                   NumberRange(min=0, message="The cost cannot be negative."),
                                                   NumberRange(max=MAX_COST, message=f"The cost is at most {MAX_COST:,}.")],
                             places=2, render_kw={"placeholder": "0.35"})
    supplier_id = SelectField("Supplier", coerce=_int_or_none, choices=[])
    note = StringField("Delivery note", [Optional(), Length(max=255)],
                       description="Optional: the delivery note or invoice number.")

    def attach_service_error(self, exc: DomainError) -> None:
        """Show a refusal of ``stock.receive_stock`` next to the field it names."""
        attach_service_error(self, exc)


class CountForm(Form):
    """A stocktake of one batch: what is physically there, and why it differs."""

    counted_quantity = IntegerField(
        "Counted quantity", [InputRequired("Enter the quantity you counted."),
                             WholeNumberRange(min=0, message="The count cannot be negative."),
                             WholeNumberRange(max=MAX_COUNT, message=f"The count is at most {MAX_COUNT:,}.")],
        description="Units physically on the shelf for this lot.",
    )
    reason = TextAreaField(
        "Reason", [DataRequired("Say what was counted and why it differs."),
                   Length(max=255, message="Keep the reason under 255 characters.")],
        description="E.g. monthly stocktake; 2 ampoules broken.", render_kw={"rows": 2},
    )

    def attach_service_error(self, exc: DomainError) -> None:
        """Show a refusal of ``stock.adjust_stock`` next to the field it names."""
        attach_service_error(self, exc)


def fill_receive_choices(engine: Engine, form: ReceiveForm) -> None:
    """Active suppliers for the supplier select, and the chosen medicine's text."""
    with transaction(engine, write=False) as db:
        suppliers = db.execute(
            select(Supplier.id, Supplier.name).where(Supplier.is_active.is_(True)).order_by(Supplier.name)
        ).all()
        form.supplier_id.choices = [("", "(not recorded)")] + [(str(s.id), s.name) for s in suppliers]
        if form.medicine_id.data is not None:
            medicine = db.get(Medicine, form.medicine_id.data)
            form.medicine_id.display = medicine_text(medicine) if medicine else ""


def medicine_text(medicine: Medicine) -> str:
    """How a medicine reads in the picker: name, strength, form, unit."""
    return f"{medicine} · counted in {medicine.unit}" + (" · controlled" if medicine.is_controlled else "")


def medicine_choices(engine: Engine, term: str) -> list[dict[str, str]]:
    """Active medicines whose name (or strength, category) contains ``term``."""
    if not term:
        return []
    with transaction(engine, write=False) as db:
        rows = db.scalars(
            select(Medicine)
            .where(Medicine.is_active.is_(True))
            .where(Medicine.name.icontains(term, autoescape=True) | Medicine.category.icontains(term, autoescape=True))
            .order_by(Medicine.name, Medicine.strength, Medicine.id)
            .limit(LOOKUP_LIMIT)
        ).all()
        return [{"id": str(m.id), "text": medicine_text(m)} for m in rows]


def receive_from_form(db: Session, *, actor: Actor, data: dict[str, Any]) -> tuple[int, str]:
    """Call ``stock.receive_stock`` with the form's values; return (batch id, message)."""
    batch = stock.receive_stock(
        db, medicine_id=data["medicine_id"], lot_number=data["lot_number"], expiry_date=data["expiry_date"],
        quantity=data["quantity"], unit_cost=cents(data["unit_cost"]), supplier_id=data["supplier_id"],
        actor=actor, note=data.get("note") or None,
    )
    medicine = db.get(Medicine, batch.medicine_id)
    message = (
        f"Received {data['quantity']} {medicine.unit} of {medicine}, lot {batch.lot_number} "
        f"(expires {batch.expiry_date.isoformat()}). The batch now holds {batch.quantity_on_hand}."
    )
    if batch.status is not BatchStatus.active:
        message += f" It is {batch.status.value}: not dispensed until released."
    return batch.id, message


def count_from_form(db: Session, *, batch_id: int, actor: Actor, data: dict[str, Any]) -> str:
    """Call ``stock.adjust_stock`` with the form's values; return the message."""
    before = db.get(StockBatch, batch_id, populate_existing=True)
    on_hand = before.quantity_on_hand if before is not None else None
    movement = stock.adjust_stock(
        db, batch_id=batch_id, counted_quantity=data["counted_quantity"], reason=data["reason"], actor=actor,
    )
    if movement is None:
        return f"Counted {data['counted_quantity']}: matches the stock on hand. The count was recorded."
    return (
        f"Stock corrected from {on_hand} to {movement.balance_after} ({movement.quantity:+d}); "
        "the adjustment is in the stock ledger."
    )


# -- the medicine list: stock columns and filters ------------------------------------------

def stock_by_medicine(engine: Engine, medicine_ids: list[int]) -> dict[int, tuple[int, date | None]]:
    """Usable units and next expiry for the medicines of one list page (one query)."""
    with transaction(engine, write=False) as db:
        return stock.usable_stock_by_medicine(db, medicine_ids)


def _page_stock(request: Request | None, medicine_id: int) -> tuple[int, date | None] | None:
    cache = getattr(request.state, "medicine_stock", None) if request is not None else None
    return cache.get(medicine_id) if cache else None


def usable_stock_cell(medicine: Medicine, _attr: Any, request: Request | None) -> Markup | str:
    """List cell: usable units, flagged when below the reorder level."""
    found = _page_stock(request, medicine.id)
    if found is None:
        return ""
    quantity = found[0]
    text = escape(f"{quantity} {medicine.unit}")
    if medicine.reorder_level and quantity < medicine.reorder_level:
        return Markup(f'{text} <span class="badge bg-red-lt" title="Reorder level {medicine.reorder_level}">'
                      f"below reorder level</span>")
    return text


def next_expiry_cell(medicine: Medicine, _attr: Any, request: Request | None) -> Markup | str:
    """List cell: the next expiry date of usable stock, flagged when within the window."""
    found = _page_stock(request, medicine.id)
    if found is None or found[1] is None:
        return ""
    expiry = found[1]
    days = (expiry - clock.today()).days
    if days <= stock_terms.expiry_window_days():
        return Markup(f'{escape(expiry.isoformat())} <span class="badge bg-orange-lt">in {days} days</span>')
    return expiry.isoformat()


class BelowReorderLevelFilter:
    """Medicine list filter: active medicines whose usable stock is below their reorder level.

    ``stock_terms.medicine_below_reorder_level``: one correlated aggregate subquery,
    so it composes with sqladmin's search, sort and paging.
    """

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, title: str = "Stock", parameter_name: str = "stock") -> None:
        self.title = title
        self.parameter_name = parameter_name

    async def lookups(self, request: Request, model: Any, run_query: Any) -> list[tuple[str, str]]:
        """The filter's choices."""
        return [("all", "All"), ("below_reorder", "Below reorder level")]

    async def get_filtered_query(self, query: Any, value: Any, model: Any) -> Any:
        """Keep medicines below their reorder level when ``value`` asks for it."""
        if value != "below_reorder":
            return query
        return query.where(stock_terms.medicine_below_reorder_level(clock.today()))


class ExpiringSoonFilter:
    """Medicine list filter: medicines with stock in an active batch expiring within N days."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, days: int | None = None, title: str = "Expiry", parameter_name: str = "expiring") -> None:
        self.days = stock_terms.expiry_window_days() if days is None else days
        self.title = title
        self.parameter_name = parameter_name

    async def lookups(self, request: Request, model: Any, run_query: Any) -> list[tuple[str, str]]:
        """The filter's choices."""
        return [("all", "All"), (f"{self.days}d", f"Expiring within {self.days} days")]

    async def get_filtered_query(self, query: Any, value: Any, model: Any) -> Any:
        """Keep medicines with a batch expiring in (today, today + days] when asked."""
        if value != f"{self.days}d":
            return query
        return query.where(stock_terms.medicine_has_batch_expiring_within(clock.today(), self.days))

