"""Small WTForms pieces shared by the workflow actions and custom pages."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup
from starlette import status
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from wtforms import Form, IntegerField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import html_params


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
        """Read the id; an empty choice is None (left to the validators), junk an error."""
        if not valuelist or valuelist[0] in ("", None):
            self.data = None
            return
        try:
            self.data = int(valuelist[0])
        except (TypeError, ValueError):
            self.data = None
            raise ValueError("Choose an entry from the list.") from None


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
