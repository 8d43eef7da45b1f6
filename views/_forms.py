"""Small WTForms pieces shared by the workflow actions and custom pages."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup
from sqlalchemy import BigInteger, Integer, String
from starlette import status
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from wtforms import Form, IntegerField, TextAreaField
from wtforms.fields.core import UnboundField
from wtforms.validators import DataRequired, Length, NumberRange, ValidationError
from wtforms.widgets import html_params

from views._fields import MoneyField

#: Largest id a form or URL may name (signed 64-bit: more cannot be bound on SQLite).
MAX_ID = 2**63 - 1
#: What an INTEGER column stores on every database (MariaDB's INT is 32 bits).
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1
#: Longest text of a column without a length (MariaDB's TEXT: 65,535 bytes, 4 per character at worst).
MAX_TEXT = 10_000
#: Most fields an admin form may post (the largest has about 20).
MAX_FIELDS = 200
NO_FILES = "This form takes no files: send its fields as text."


async def posted_form(request: Request) -> FormData:
    """The form posted to an admin page, read once (later ``request.form()`` calls get it too).

    No admin form takes a file, and code reading a field expects text, so a body with a
    file part is refused here rather than reach a form field as an ``UploadFile``.

    Raises:
        HTTPException: 400 for a file part, more than ``MAX_FIELDS`` fields, or a
            malformed multipart body (Starlette's own sentence).
    """
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS)
    except HTTPException as exc:
        if str(exc.detail).startswith("Too many files"):
            raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail=NO_FILES) from None
        raise


class WholeNumberRange(NumberRange):
    """WTForms' ``NumberRange`` for whole numbers of any size.

    WTForms' own first calls ``math.isnan(data)``, which raises OverflowError for an int
    past about 10**308 (a 500 for a typed 1 and 400 zeros); whole numbers need no NaN check.
    """

    def __call__(self, form: Form, field: Any) -> None:
        """Pass a whole number within ``min``..``max``; anything else as WTForms decides."""
        data = field.data
        if not isinstance(data, int) or isinstance(data, bool):
            return super().__call__(form, field)
        if (self.min is None or data >= self.min) and (self.max is None or data <= self.max):
            return None
        message = self.message or field.gettext("Number must be between %(min)s and %(max)s.")
        raise ValidationError(message % {"min": self.min, "max": self.max})


class LookupWidget:
    """A ``<select>`` that sqladmin's JavaScript turns into a search-as-you-type picker.

    Uses sqladmin's select2 set-up (``data-role="select2-ajax"``): typing asks
    ``field.lookup_url`` with ``?name=<field name>&term=<text>`` and expects
    ``{"results": [{"id": ..., "text": ...}]}``. The chosen value and its text
    (``field.display``) are rendered back so a re-shown form keeps the choice.
    """

    def __call__(self, field: LookupField, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        attrs = {"data-role": "select2-ajax", "data-url": field.lookup_url, "placeholder": field.placeholder}
        if field.data is not None and field.display:
            attrs["data-json"] = json.dumps([{"id": str(field.data), "text": field.display}])
        return Markup(f"<select {html_params(name=field.name, **attrs, **kwargs)}></select>")


class LookupField(IntegerField):
    """An integer id chosen with a search picker (see :class:`LookupWidget`).

    Set ``lookup_url`` (and, when re-showing a posted form, ``display``) before rendering.
    """

    widget = LookupWidget()

    def __init__(self, label: str | None = None, validators=None, *, placeholder: str = "Type to search", **kwargs: Any):
        super().__init__(label, validators, **kwargs)
        self.placeholder = placeholder
        self.lookup_url = ""
        self.display = ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Read the id; an empty choice is None (left to the validators), anything but an
        id (1 to ``MAX_ID``, ASCII digits) an error."""
        if not valuelist or valuelist[0] in ("", None):
            self.data = None
            return
        self.data = parse_id(valuelist[0])
        if self.data is None:
            raise ValueError("Choose an entry from the list.")


def parse_id(value: Any) -> int | None:
    """``value`` as a row id (ASCII digits, 1 to ``MAX_ID``), or None when it cannot be one."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def limit_to_columns(form_class: type[Form], model: Any) -> type[Form]:
    """Limit the fields of a scaffolded model form to what their columns store.

    sqladmin limits text to a ``String(n)``'s length but nothing else: past an INTEGER
    column's range SQLite fails to bind a number and MariaDB refuses it, and MariaDB's
    TEXT holds 65,535 bytes. These limits become form errors instead:

    * whole numbers, and money typed in yuan and stored in fen (``views._fields.MoneyField``):
      ``INTEGER_MIN``..``INTEGER_MAX`` (64 bits for BIGINT columns);
    * text without a length: at most ``MAX_TEXT`` characters (4 bytes each at worst).

    Args:
        form_class (type[Form]): the form class sqladmin built (its fields still unbound).
        model (Any): the view's model.

    Returns:
        type[Form]: the same class, its number and long-text fields with one more validator.
    """
    columns = model.__table__.columns
    for name, unbound in list(vars(form_class).items()):
        column = columns.get(name)
        if not isinstance(unbound, UnboundField) or column is None:
            continue
        limit: Any = None
        low, high = (-(2**63), MAX_ID) if isinstance(column.type, BigInteger) else (INTEGER_MIN, INTEGER_MAX)
        if issubclass(unbound.field_class, IntegerField) and isinstance(column.type, Integer):
            limit = WholeNumberRange(low, high, message=f"Enter a whole number from {low:,} to {high:,}.")
        elif issubclass(unbound.field_class, MoneyField) and isinstance(column.type, Integer):  # data in fen
            limit = WholeNumberRange(low, high, message=f"Enter an amount from {low / 100:,.2f} to {high / 100:,.2f}.")
        elif isinstance(column.type, String) and not column.type.length:
            limit = Length(max=MAX_TEXT, message=f"Keep this under {MAX_TEXT:,} characters.")
        if limit is not None:
            unbound.kwargs["validators"] = [*(unbound.kwargs.get("validators") or []), limit]
    return form_class


def reason_form(*, max_length: int = 500, label: str = "Reason", description: str = "Recorded in the audit log.") -> type[Form]:
    """A form class with one required reason of at most ``max_length`` characters."""

    class ReasonForm(Form):
        """A required reason, recorded with the change."""

        reason = TextAreaField(
            label,
            validators=[
                DataRequired("Give a reason."),
                Length(max=max_length, message=f"Keep the reason under {max_length} characters."),
            ],
            description=description,
            render_kw={"rows": 2},
        )

    return ReasonForm


#: The reason asked when cancelling appointments or clinic sessions.
ReasonForm = reason_form(description="Recorded in the audit log and on each cancelled appointment.")


def attach_service_error(form: Any, exc: Any, *, fields: dict[str, str] | None = None) -> None:
    """Show a service's refusal (a ``DomainError``) on ``form``: next to the field it names
    (``exc.field``, the service's argument; ``fields`` maps an argument to a differently
    named form field), else at the top of the form. Never parses the message's words.
    """
    name = (fields or {}).get(exc.field, exc.field) if exc.field else None
    field = getattr(form, name, None) if name else None
    if field is None or not hasattr(field, "errors"):
        form.form_errors.append(exc.message)
    else:
        field.errors = [*field.errors, exc.message]
