"""The dispense actions' form and confirmation notes (``PrescriptionView``).

The notes show, per prescription, what is still owed against usable stock, so the
pharmacist sees a shortage before submitting; the witness picker appears only when a
controlled medicine is owed. ``portal.services.dispensing`` decides and enforces all
of it again when the action runs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import Form, SelectField, ValidationError

from models import Medicine, PrescriptionItem, StaffUser
from portal.services import stock
from portal.services.dispensing import DispenseResult
from views._actions import active_staff_choices


def _int_or_none(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(value)


class DispenseForm(Form):
    """The witness of a controlled medicine (the field is removed when none is owed)."""

    witness_id = SelectField(
        "Witness", coerce=_int_or_none, choices=[],
        description="A second staff member who watches the controlled medicine being handed out; "
        "recorded on the stock ledger.",
    )
    #: Controlled medicines owed by the selected prescriptions (set by the preview).
    controlled: list[str] = []

    def validate_witness_id(self, field: SelectField) -> None:
        """A controlled medicine needs a witness."""
        if self.controlled and field.data is None:
            names = ", ".join(self.controlled)
            verb = "is a controlled medicine" if len(self.controlled) == 1 else "are controlled medicines"
            raise ValidationError(f"Choose the witness: {names} {verb}.")


def dispense_preview(view: Any, db: Session, rows: list[Any], form: DispenseForm | None,
                     user: StaffUser) -> dict[int, str]:
    """Per prescription: each medicine still owed, against usable stock; set up the witness field."""
    ids = [rx.id for rx in rows]
    lines = db.execute(
        select(PrescriptionItem.prescription_id, PrescriptionItem.quantity, PrescriptionItem.quantity_dispensed,
               Medicine)
        .join(Medicine, Medicine.id == PrescriptionItem.medicine_id)
        .where(PrescriptionItem.prescription_id.in_(ids))
        .order_by(PrescriptionItem.prescription_id, PrescriptionItem.id)
    ).all()
    usable = stock.usable_stock_by_medicine(db, sorted({line.Medicine.id for line in lines}))
    owed_total: dict[int, int] = defaultdict(int)  # medicine -> units owed by all selected prescriptions
    for line in lines:
        owed_total[line.Medicine.id] += max(line.quantity - line.quantity_dispensed, 0)
    notes: dict[int, list[str]] = defaultdict(list)
    controlled: set[str] = set()
    for line in lines:
        owed = line.quantity - line.quantity_dispensed
        if owed <= 0:
            continue
        medicine = line.Medicine
        have = usable.get(medicine.id, (0, None))[0]
        text = f"{medicine}: {owed} {medicine.unit} owed, {have} usable"
        if have < owed:
            text += f", short by {owed - have}"
        elif have < owed_total[medicine.id]:
            text += " (not enough for all the selected prescriptions together)"
        if medicine.is_controlled:
            text += " (controlled)"
            controlled.add(str(medicine))
        notes[line.prescription_id].append(text)
    if form is not None:
        if controlled:
            form.controlled = sorted(controlled)
            form.witness_id.choices = [("", "(choose the witness)")] + active_staff_choices(
                db, exclude_id=user.id)
            form.witness_id.flags.required = True
        else:
            del form["witness_id"]
    return {rx.id: "; ".join(notes[rx.id]) or "Nothing left to dispense." for rx in rows}


def dispensed_detail(result: DispenseResult) -> str:
    """What one dispense did, for the success message."""
    if result.complete:
        return f"{result.units_dispensed} units, complete"
    owed = "; ".join(f"{i.outstanding} {i.unit} {i.medicine}" for i in result.items if i.outstanding)
    return f"{result.units_dispensed} units now, still owed: {owed}"
