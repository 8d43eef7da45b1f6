"""Form fields and value formats shared by the admin screens.

Money is stored as an integer number of the smallest currency unit (fen) but typed
and shown in yuan (``15.00``); enum values are shown as words ("Checked in"), never
as the stored code.
"""

from __future__ import annotations

import enum
from decimal import Decimal, InvalidOperation

from sqladmin.fields import SelectField
from sqladmin.forms import ModelConverter, converts
from wtforms import StringField
from wtforms.validators import AnyOf, ValidationError

from portal.core.settings import get_settings

#: Words for enum values where capitalising the code is not good enough.
ENUM_LABELS = {
    "no_show": "No-show",
    "expiry_write_off": "Expiry write-off",
    "front_desk": "Front desk",
}


def enum_label(value: enum.Enum | str | None) -> str:
    """A stored enum value as words: ``checked_in`` -> ``Checked in``."""
    if value is None:
        return ""
    code = value.value if isinstance(value, enum.Enum) else str(value)
    return ENUM_LABELS.get(code) or code.replace("_", " ").capitalize()


def enum_choices(enum_cls: type[enum.Enum]) -> list[tuple[str, str]]:
    """``[(value, label), ...]`` for a filter or a select."""
    return [(member.value, enum_label(member)) for member in enum_cls]


def money(value: int | None) -> str:
    """An amount in the smallest currency unit as ``1,234.50`` (empty for None)."""
    if value is None:
        return ""
    return f"{value / 100:,.2f}"


#: An amount at least this large (in yuan) is refused before it is rounded to fen: far
#: above what a money column holds, well inside what a Decimal holds exactly (28 digits).
MAX_AMOUNT = Decimal(10) ** 15


class MoneyField(StringField):
    """An amount typed in yuan (``15``, ``15.5``, ``1,234.50``) and stored in fen (int).

    Refuses more than two decimals or anything that is not a number; the data is an
    ``int`` (or None when left empty).
    """

    def __init__(self, label=None, validators=None, **kwargs) -> None:
        kwargs.pop("places", None)
        kwargs.setdefault("description", f"Amount in {get_settings().currency}, e.g. 15.00")
        render_kw = dict(kwargs.pop("render_kw", None) or {})
        render_kw.setdefault("inputmode", "decimal")
        super().__init__(label, validators, render_kw=render_kw, **kwargs)

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if isinstance(self.data, int):
            return f"{self.data / 100:.2f}"
        return ""

    def process_formdata(self, valuelist: list[str]) -> None:
        """Parse the typed amount into fen."""
        if not valuelist:
            return
        text = valuelist[0].strip().replace(",", "")
        if not text:
            self.data = None
            return
        try:
            amount = Decimal(text)
        except InvalidOperation:
            self.data = None
            raise ValueError("Enter an amount such as 15.00.") from None
        if amount.is_finite() and abs(amount) >= MAX_AMOUNT:  # quantize() would raise past 28 digits
            self.data = None
            raise ValueError("This amount is too large.")
        if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
            self.data = None
            raise ValueError("Enter an amount with at most two decimals.")
        self.data = int(amount * 100)

    def pre_validate(self, form) -> None:
        """The data must be a whole number of fen (set by ``process_formdata``)."""
        if self.data is not None and not isinstance(self.data, int):
            raise ValidationError("Enter an amount such as 15.00.")


class PortalConverter(ModelConverter):
    """sqladmin's form converter, with enum selects labelled in words."""

    @converts("Enum")
    def conv_enum(self, model, prop, kwargs):
        """A select of the enum's values, each labelled with :func:`enum_label`."""
        column = prop.columns[0]
        enum_cls = getattr(column.type, "enum_class", None)
        values = list(column.type.enums)
        if enum_cls is not None:
            choices = [(m.value, enum_label(m)) for m in enum_cls if m.value in values]
        else:
            choices = [(v, enum_label(v)) for v in values]
        accepted: list = [value for value, _ in choices]
        if column.nullable:
            kwargs.setdefault("allow_blank", True)
            accepted.append(None)
            kwargs["filters"] = [*kwargs.get("filters", []), lambda x: x or None]
        kwargs["choices"] = choices
        kwargs.setdefault("validators", [])
        kwargs["validators"].append(AnyOf(accepted, message="Choose one of the listed values."))
        kwargs.setdefault("coerce", lambda v: v.value if isinstance(v, enum.Enum) else str(v))
        return SelectField(**kwargs)
