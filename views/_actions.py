"""Workflow actions for admin views: a confirmation page, a CSRF-checked POST, one
transaction per selected row, one flash message per outcome.

sqladmin's own ``@action`` is a plain GET link (``/admin/<identity>/action/<slug>?pks=1,2``)
that nothing protects against CSRF. :func:`row_action` keeps sqladmin's buttons (on
the list, for the checked rows, and on the detail page) and its permission check
(``has_permission(request, "action:<slug>")``), but turns the link into:

* **GET**: a confirmation page listing the selected rows, saying what will happen and
  asking for whatever the action needs (a reason, a witness). It changes nothing.
* **POST** (same URL): checks the permission again and the CSRF token
  (``views._csrf``), validates the form, then calls the action's service function for
  each selected row, each in its own transaction (``portal.core.db.run_in_transaction``).
  A refused row (``DomainError``) is skipped with the service's message; an unexpected
  error is logged and reported as a failed row, never a 500. It redirects back to the
  page the user came from with at most three flash messages: done, skipped, failed.

Views mix in :class:`ActionsMixin` and declare actions as methods::

    class AppointmentView(ActionsMixin, PortalModelView, model=Appointment):
        @row_action("confirm", "Confirm", done="confirmed",
                    explain="Each appointment goes from pending to confirmed.")
        def action_confirm(self, db, pk, *, actor, data):
            appointments.confirm(db, pk, actor=actor)

The decorated method runs inside the row's transaction; it calls a service and never
sets a status or a quantity itself. It may return a short text shown after the row's
label in the success message. Name action methods ``action_<something>`` so they can
never shadow a ModelView method.

Custom pages of a view (``@expose``) use the same helpers: :meth:`ActionsMixin.require_permission`,
:meth:`ActionsMixin.require_csrf` and :meth:`ActionsMixin.render`.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqladmin import action as sqladmin_action
from sqladmin.authorization import custom_action
from sqladmin.flash import Flash
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload
from starlette import status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms import Form

from models import StaffUser
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import DomainError
from views._csrf import FIELD as CSRF_FIELD
from views._csrf import csrf_token, csrf_valid
from views._forms import parse_id, posted_form
from views.auth import actor_for

log = logging.getLogger(__name__)

#: Most rows one action may touch at once.
MAX_ROWS = 200
#: Row labels named in a success message before "and N more".
MAX_NAMED = 8

CSRF_FAILED = (
    "This form has expired or did not come from this site, so nothing was changed. "
    "Go back, reload the page and try again."
)

_declaration_order = itertools.count()

#: ``run(view, session, pk, *, actor, data) -> str | None``
RunFn = Callable[..., Any]
#: ``preview(view, session, rows, form, user) -> {pk: note}``: may adjust the form
#: (choices, removing a field that is not needed) and return a note per row.
PreviewFn = Callable[..., dict[Any, str] | None]


@dataclass(frozen=True)
class RowAction:
    """One workflow action of a view, as declared with :func:`row_action`.

    Attributes:
        slug (str): URL and permission name (``action:<slug>``).
        label (str): button text, e.g. "Check in".
        done (str): past tense for the success message, e.g. "checked in".
        run (RunFn): the view method that calls the service for one row.
        explain (str): one or two sentences on the confirmation page: what happens.
        form (type[Form] | None): extra input the action needs (reason, witness).
        title (str): page title and submit text; ``{label}``, ``{count}``, ``{noun}``.
        danger (bool): show the submit button in red (cancelling, writing off).
        preview (PreviewFn | None): fills the form's choices and per-row notes.
        in_list (bool): offer it in the list's Actions menu.
        in_detail (bool): offer it as a button on the detail page.
        order (int): declaration order, used to order the buttons.
    """

    slug: str
    label: str
    done: str
    run: RunFn
    explain: str = ""
    form: type[Form] | None = None
    title: str = "{label} {count} {noun}"
    danger: bool = False
    preview: PreviewFn | None = None
    in_list: bool = True
    in_detail: bool = True
    order: int = field(default_factory=lambda: next(_declaration_order))

    def heading(self, view: Any, count: int) -> str:
        """The page title / submit text for ``count`` rows, e.g. "Confirm 3 appointments"."""
        noun = (view.name if count == 1 else view.name_plural).lower()
        return self.title.format(label=self.label, count=count, noun=noun)


def row_action(
    slug: str,
    label: str,
    *,
    done: str,
    explain: str = "",
    form: type[Form] | None = None,
    title: str = "{label} {count} {noun}",
    danger: bool = False,
    preview: PreviewFn | None = None,
    in_list: bool = True,
    in_detail: bool = True,
) -> Callable[[RunFn], Callable[..., Any]]:
    """Declare a view method as a CSRF-safe workflow action (see the module docstring).

    The route is sqladmin's ``/admin/<identity>/action/<slug>`` for GET (confirmation
    page) and POST (do it); both require ``has_permission(request, "action:<slug>")``.
    """

    def wrap(run: RunFn) -> Callable[..., Any]:
        spec = RowAction(
            slug=slug, label=label, done=done, run=run, explain=explain, form=form, title=title,
            danger=danger, preview=preview, in_list=in_list, in_detail=in_detail,
        )

        async def endpoint(self: ActionsMixin, request: Request) -> Response:
            return await self.handle_row_action(request, spec)

        endpoint.__name__ = run.__name__
        endpoint.__qualname__ = run.__qualname__
        endpoint.__doc__ = run.__doc__
        endpoint._row_action = spec  # type: ignore[attr-defined]
        routed = sqladmin_action(
            slug, label, add_in_list=in_list, add_in_detail=in_detail, include_in_schema=False
        )(endpoint)
        # The same endpoint also answers POST on the same path (sqladmin registers
        # @action routes for GET only; @expose attributes add the POST route).
        routed._exposed = True
        routed._path = f"/action/{routed._slug}"
        routed._methods = ["POST"]
        return routed

    return wrap


def page_action(slug: str, label: str, *, endpoint: str, in_list: bool = True, in_detail: bool = True):
    """A button (list Actions menu and/or detail page) that opens a custom page for ONE row.

    The GET ``/admin/<identity>/action/<slug>?pks=<id>`` only redirects to the page
    ``endpoint`` (an ``@expose`` method whose path takes ``{pk}``); with no row or
    several rows selected it goes back with a message. Permission: ``action:<slug>``,
    which the page itself must check too (:meth:`ActionsMixin.require_permission`).
    """

    async def endpoint_fn(self: ActionsMixin, request: Request) -> Response:
        self.require_permission(request, slug)
        pks = self.parse_pks(request.query_params.get("pks"))
        if len(pks) != 1:
            Flash.warning(request, f"Select exactly one {self.name.lower()} for \u201c{label}\u201d.")  # type: ignore[attr-defined]
            return RedirectResponse(self.safe_next(request, request.headers.get("referer")), status_code=303)
        url = request.url_for(f"admin:view-{self.identity}-{endpoint}", pk=str(pks[0]))  # type: ignore[attr-defined]
        return RedirectResponse(url, status_code=303)

    endpoint_fn.__name__ = f"open_{endpoint}"
    endpoint_fn.__doc__ = f"Open the {label!r} page for the selected row."
    endpoint_fn._page_slug = slug  # type: ignore[attr-defined]
    endpoint_fn._order = next(_declaration_order)  # type: ignore[attr-defined]
    return sqladmin_action(slug, label, add_in_list=in_list, add_in_detail=in_detail, include_in_schema=False)(endpoint_fn)


@dataclass(frozen=True)
class PageLink:
    """A button on the list page's header that opens a custom page of the view.

    Attributes:
        slug (str): permission name (``action:<slug>``) the user needs to see it.
        label (str): button text.
        endpoint (str): name of the view method exposed with ``@expose``.
    """

    slug: str
    label: str
    endpoint: str


@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)
    #: (row label, the service's message, the part of the message naming the row or None)
    skipped: list[tuple[str, str, str | None]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ActionsMixin:
    """Adds :func:`row_action` handling and custom-page helpers to a ModelView.

    Class attributes:
        action_columns (list | None): columns shown for each selected row on the
            confirmation page; the list page's columns when None.
        page_links (list[PageLink]): header buttons of the list page, each to a
            custom page of the view (shown only with its permission).
    """

    list_template = "portal/list.html"
    action_columns: ClassVar[list[Any] | None] = None
    page_links: ClassVar[list[PageLink]] = []

    # -- declaration -----------------------------------------------------------------
    @classmethod
    def row_actions(cls) -> dict[str, RowAction]:
        """The view's workflow actions by slug, in declaration order."""
        found: dict[str, RowAction] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "_row_action", None)
                if isinstance(spec, RowAction):
                    found[spec.slug] = spec
        return dict(sorted(found.items(), key=lambda item: item[1].order))

    @classmethod
    def permission_names(cls) -> list[str]:
        """Every ``action:<slug>`` this view asks the authorization backend about."""
        slugs = [*cls.row_actions(), *(link.slug for link in cls.page_links)]
        for klass in reversed(cls.__mro__):
            slugs += [v._page_slug for v in vars(klass).values() if hasattr(v, "_page_slug")]
        return [custom_action(slug) for slug in dict.fromkeys(slugs)]

    def _authorization_actions(self) -> Sequence[str]:
        # A role granted only a custom page (e.g. "book") still reaches the view.
        return (*super()._authorization_actions(), *self.permission_names())  # type: ignore[misc]

    def _visible_custom_actions(self, request: Request, in_detail: bool = False) -> dict[str, str]:
        # sqladmin registers actions in reverse source order; show them as declared.
        visible = super()._visible_custom_actions(request, in_detail)  # type: ignore[misc]
        order = {slug: spec.order for slug, spec in self.row_actions().items()}
        for klass in type(self).__mro__:
            for value in vars(klass).values():
                if hasattr(value, "_page_slug"):
                    order.setdefault(value._page_slug, value._order)
        return dict(sorted(visible.items(), key=lambda item: order.get(item[0], 1 << 30)))

    def header_links(self, request: Request) -> list[dict[str, str]]:
        """The list page's header buttons this user may use (label and URL)."""
        return [
            {"label": link.label, "url": str(request.url_for(f"admin:view-{self.identity}-{link.endpoint}"))}  # type: ignore[attr-defined]
            for link in self.page_links
            if self.has_permission(request, custom_action(link.slug))  # type: ignore[attr-defined]
        ]

    # -- helpers shared with custom pages ------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The database engine the admin is bound to."""
        return self.session_maker.kw["bind"]  # type: ignore[attr-defined]

    def require_permission(self, request: Request, slug: str) -> None:
        """Raise 403 unless the user may do ``action:<slug>`` on this view."""
        if not self.has_permission(request, custom_action(slug)):  # type: ignore[attr-defined]
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="You are not allowed to do this.")

    @staticmethod
    def require_csrf(request: Request, form: FormData) -> None:
        """Raise 403 unless ``form`` carries a valid CSRF token for this session."""
        if not csrf_valid(request, form.get(CSRF_FIELD)):
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=CSRF_FAILED)

    @staticmethod
    def actor(request: Request) -> Actor:
        """The service-layer Actor of the logged-in staff member."""
        return actor_for(request.state.staff, request)

    async def render(self, request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
        """Render one of our templates with the view, a CSRF token and ``context``.

        ``title`` (the page header) defaults to the view's plural name; templates put
        the page's own ``heading`` on its card.
        """
        context = {
            "model_view": self, "csrf_field": CSRF_FIELD, "csrf_token": csrf_token(request),
            "title": self.name_plural, **context,  # type: ignore[attr-defined]
        }
        return await self.templates.TemplateResponse(request, template, context, status_code=status_code)  # type: ignore[attr-defined]

    def safe_next(self, request: Request, candidate: object) -> str:
        """A same-site admin path to return to (from a Referer or form field), else the list."""
        default = str(request.url_for("admin:list", identity=self.identity))  # type: ignore[attr-defined]
        if not isinstance(candidate, str) or not candidate:
            return default
        from urllib.parse import urlsplit

        parts = urlsplit(candidate)
        if parts.netloc and parts.netloc != request.url.netloc:
            return default
        path = parts.path or ""
        base = urlsplit(default).path.split(f"/{self.identity}/")[0]  # type: ignore[attr-defined]
        if not path.startswith(base + "/") or "//" in path or "/action/" in path:
            return default
        return path + (f"?{parts.query}" if parts.query else "")

    def parse_pks(self, raw: object) -> list[int]:
        """The selected primary keys from ``"1,2,3"`` (order kept, duplicates dropped).

        Raises:
            HTTPException: 400 when a part is not an id (``views._forms.parse_id``: ASCII
                digits, 1 to 2**63 - 1, beyond which SQLite cannot bind it) or more than
                ``MAX_ROWS`` rows are selected.
        """
        pks: list[int] = []
        for part in str(raw or "").split(","):
            part = part.strip()
            if not part:
                continue
            pk = parse_id(part)
            if pk is None:
                raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="The selection is not valid.")
            if pk not in pks:
                pks.append(pk)
        if len(pks) > MAX_ROWS:
            raise HTTPException(
                status_code=status.HTTP_400_BAD_REQUEST,
                detail=f"Select at most {MAX_ROWS} rows at a time.",
            )
        return pks

    def row_label(self, row: Any) -> str:
        """How a row is named in messages (its ``str``: reference, number, lot)."""
        return str(row)

    def row_mention(self, row: Any, message: str) -> str | None:
        """The part of a service's ``message`` that names ``row`` (its label or ``#id``), if any.

        A message that names its row is shown as it is; similar messages of several
        rows are grouped by replacing this part.
        """
        pk = getattr(row, self.pk_columns[0].key)  # type: ignore[attr-defined]
        for mention in (self.row_label(row), f"#{pk}"):
            if mention in message:
                return mention
        return None

    # -- the action itself --------------------------------------------------------------
    async def handle_row_action(self, request: Request, spec: RowAction) -> Response:
        """GET: the confirmation page. POST: check, run per row, flash, redirect."""
        self.require_permission(request, spec.slug)
        posted = request.method == "POST"
        if posted:
            data = await posted_form(request)
            self.require_csrf(request, data)
            pks = self.parse_pks(data.get("pks"))
            next_url = self.safe_next(request, data.get("next"))
        else:
            data = None
            pks = self.parse_pks(request.query_params.get("pks"))
            next_url = self.safe_next(request, request.headers.get("referer"))

        form = spec.form(formdata=data) if spec.form else None
        user: StaffUser = request.state.staff
        # A POST shows no table: it loads only the relations its messages name the rows by.
        relations = self._list_relations if not posted else self.label_relations(self._list_relations)  # type: ignore[attr-defined]
        rows, notes = await run_in_threadpool(self._gather, request, pks, spec, form, user, relations)
        if not posted or not rows or (form is not None and not form.validate()):
            if posted and rows and len(relations) < len(self._list_relations):  # type: ignore[attr-defined]
                rows = await run_in_threadpool(self._load_rows, request, pks, self._list_relations)  # type: ignore[attr-defined]
            return await self._confirm_page(request, spec, pks, rows, notes, form, next_url,
                                            status_code=400 if posted else 200)

        # Only rows the user may see are acted on: a row outside the view's scope (a
        # doctor's colleague's) was not gathered and is left out like a deleted one.
        pk_key = self.pk_columns[0].key  # type: ignore[attr-defined]
        in_scope = {getattr(row, pk_key) for row in rows}
        pks = [pk for pk in pks if pk in in_scope]
        outcome = await self._run_rows(spec, pks, rows, self.actor(request), form.data if form else {})
        self._flash(request, spec, outcome)
        return RedirectResponse(next_url, status_code=status.HTTP_303_SEE_OTHER)

    def label_relations(self, relations: list[Any]) -> list[Any]:
        """The list relations :meth:`row_label` and :meth:`row_mention` read (loaded for a POST,
        which shows no table). All of them by default; a view whose labels need fewer says so."""
        return relations

    def _load_rows(self, request: Request, pks: list[int], relations: list[Any],
                   db: Session | None = None) -> list[Any]:
        """The selected rows the user may see (the view's row scope), in ``pks`` order, with
        ``relations`` loaded."""
        pk_column = self.pk_columns[0]  # type: ignore[attr-defined]
        stmt = self._scoped(request, select(self.model).where(pk_column.in_(pks)))  # type: ignore[attr-defined]
        for relation in relations:
            stmt = stmt.options(selectinload(relation))
        if db is None:
            with transaction(self.engine, write=False) as db:
                return self._load_rows(request, pks, relations, db)
        found = {getattr(row, pk_column.key): row for row in db.scalars(stmt).unique()}
        return [found[pk] for pk in pks if pk in found]

    def _gather(self, request: Request, pks: list[int], spec: RowAction, form: Form | None,
                user: StaffUser, relations: list[Any]) -> tuple[list[Any], dict]:
        """Load the selected rows the user may see (the view's row scope; ``relations``
        included) and the action's preview notes."""
        if not pks:
            return [], {}
        with transaction(self.engine, write=False) as db:
            rows = self._load_rows(request, pks, relations, db)
            notes = (spec.preview(self, db, rows, form, user) if spec.preview else None) or {}
        return rows, notes

    async def _confirm_page(
        self, request: Request, spec: RowAction, pks: list[int], rows: list[Any], notes: dict,
        form: Form | None, next_url: str, status_code: int,
    ) -> Response:
        columns = self.action_columns or self._list_prop_names  # type: ignore[attr-defined]
        names = [c if isinstance(c, str) else c.key for c in columns]
        headers = [self._column_labels.get(n, n.replace("_", " ").capitalize()) for n in names]  # type: ignore[attr-defined]
        pk_key = self.pk_columns[0].key  # type: ignore[attr-defined]
        table = []
        for row in rows:
            cells = [(await self.get_list_value(row, n, request))[1] for n in names]  # type: ignore[attr-defined]
            table.append({"cells": cells, "note": notes.get(getattr(row, pk_key), "")})
        found = {getattr(row, pk_key) for row in rows}
        return await self.render(request, "portal/action_confirm.html", {
            "heading": spec.heading(self, len(rows)) if rows else spec.label,
            "spec": spec,
            "headers": headers,
            "table": table,
            "missing": [pk for pk in pks if pk not in found],
            "form": form,
            "pks": ",".join(str(getattr(row, pk_key)) for row in rows),
            "next_url": next_url,
            "selected_nothing": not pks,
        }, status_code=status_code)

    async def _run_rows(self, spec: RowAction, pks: list[int], rows: list[Any], actor: Actor, data: dict) -> _Outcome:
        pk_key = self.pk_columns[0].key  # type: ignore[attr-defined]
        by_pk = {getattr(row, pk_key): row for row in rows}
        run = functools.partial(spec.run, self)
        outcome = _Outcome()
        for pk in pks:
            row = by_pk.get(pk)
            label = self.row_label(row) if row is not None else f"#{pk}"
            try:
                detail = await run_in_threadpool(run_in_transaction, run, pk, engine=self.engine, actor=actor, data=data)
            except DomainError as exc:
                mention = self.row_mention(row, exc.message) if row is not None else None
                outcome.skipped.append((label, exc.message, mention))
            except Exception:
                log.exception("action %s on %s %s failed", spec.slug, self.identity, pk)  # type: ignore[attr-defined]
                outcome.failed.append(label)
            else:
                outcome.done.append(f"{label} ({detail})" if detail else label)
        return outcome

    def _flash(self, request: Request, spec: RowAction, outcome: _Outcome) -> None:
        if outcome.done:
            n = len(outcome.done)
            named = _named(outcome.done)
            noun = (self.name if n == 1 else self.name_plural).lower()  # type: ignore[attr-defined]
            Flash.success(request, f"{n} {noun} {spec.done}: {named}.")
        if outcome.skipped:
            n = len(outcome.skipped)
            lead = f"{n} skipped" if outcome.done or outcome.failed else f"Nothing {spec.done}; {n} skipped"
            reasons = _group_refusals(outcome.skipped)
            if len(reasons) == 1:
                Flash.warning(request, f"{lead}: {reasons[0]}")
            else:
                Flash.warning(request, f"{lead}:" + "".join(f"\n\u2022 {r}" for r in reasons))
        if outcome.failed:
            Flash.error(
                request,
                f"{len(outcome.failed)} failed because of an unexpected error (it has been logged; "
                f"nothing was changed for them): {', '.join(outcome.failed)}.",
            )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _named(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_NAMED])
    return shown + (f" and {len(labels) - MAX_NAMED} more" if len(labels) > MAX_NAMED else "")


def _group_refusals(skipped: list[tuple[str, str, str | None]]) -> list[str]:
    """One sentence per distinct refusal, naming the rows it applies to.

    ``Appointment A is cancelled; it cannot be confirmed.`` for one row;
    ``Appointment … is cancelled; it cannot be confirmed. (3: A, B, C)`` for several.
    """
    groups: dict[str, list[tuple[str, str, str | None]]] = {}
    for label, message, mention in skipped:
        key = message.replace(mention, "\u2026") if mention else message
        groups.setdefault(key, []).append((label, message, mention))
    out = []
    for key, rows in groups.items():
        if len(rows) == 1:
            label, message, mention = rows[0]
            out.append(_sentence(message if mention else f"{label}: {message}"))
        else:
            out.append(f"{_sentence(key)} ({len(rows)}: {_named([label for label, _, _ in rows])})")
    return out


def active_staff_choices(db: Session, *, exclude_id: int | None) -> list[tuple[str, str]]:
    """(id, "Full Name (username) - role") of active staff, for witness pickers."""
    rows = db.execute(
        select(StaffUser.id, StaffUser.full_name, StaffUser.username, StaffUser.role)
        .where(StaffUser.is_active.is_(True))
        .order_by(StaffUser.full_name)
    ).all()
    return [(str(r.id), f"{r.full_name} ({r.username}, {r.role.value})") for r in rows if r.id != exclude_id]
