"""The admin's authorization backend: every admin route asks it, fed by ``views.permissions``.

sqladmin asks ``has_permission(request, identity, action, obj)`` for the menu, the list,
detail, create, edit, delete, export, import and ajax-lookup routes and for ``@action``
endpoints (``action:<slug>``). It does not ask for the index page, and asks a custom
page (``@expose``) only whether its view is "accessible". ``load`` closes that gap:
it runs once per request right after authentication, on every login-protected route,
and refuses (403) any index, custom page or action the table does not grant. A route
the table does not name is refused: deny by default.

``check_configuration`` compares the table with the admin at start-up (like Django's
``checks``), so a view, action or page missing from the table fails loudly.
"""

from __future__ import annotations

import inspect
from typing import Any

from sqladmin import BaseView, ModelView
from sqladmin.authorization import AuthorizationBackend
from sqladmin.exceptions import ImproperlyConfigured
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request

from views import permissions as table

#: sqladmin's built-in action names -> right letter of the table. ``import`` is absent:
#: nobody imports through the admin.
ACTION_LETTERS = {"list": "v", "details": "v", "create": "c", "edit": "e", "delete": "d", "export": "x"}

#: Which view flag turns a right letter off.
LETTER_FLAGS = {"v": "can_view_details", "c": "can_create", "e": "can_edit", "d": "can_delete", "x": "can_export"}


def role_of(request: Request) -> str | None:
    """The role (value) of the staff member of ``request``, or None before authentication."""
    staff = getattr(request.state, "staff", None)
    role = getattr(staff, "role", None)
    return getattr(role, "value", role)


def route_permission(endpoint: Any) -> tuple[str, str] | None:
    """The (identity, action) a login-protected route needs beyond sqladmin's own checks.

    Returns None for sqladmin's model routes (list, details, create, edit, delete,
    export, import, ajax lookup, files), which ask the backend themselves.
    """
    owner = getattr(endpoint, "__self__", None)
    name = getattr(endpoint, "__name__", "")
    if getattr(endpoint, "_action", False) and isinstance(owner, ModelView):
        return owner.identity, f"action:{endpoint._slug}"
    if getattr(endpoint, "_exposed", False):
        explicit = getattr(endpoint, "_permission", None)
        if isinstance(owner, ModelView):
            action = table.ENTITY_PAGES.get(f"{owner.identity}:{name}")
            return owner.identity, explicit or (f"action:{action}" if action else f"page:{name}")
        return getattr(endpoint, "_identity", None) or name, explicit or "list"
    if name == "index" and not isinstance(owner, (ModelView, BaseView)):
        return "index", "list"
    return None


def allowed(role: str | None, identity: str, action: str) -> bool:
    """Answer one permission question from the table (no request needed).

    Args:
        role (str | None): the staff role; None is refused everything.
        identity (str): a view identity, a custom page, or ``index``.
        action (str): ``list``/``details``/``create``/``edit``/``delete``/``export``,
            ``action:<slug>``, or ``page:<name>`` for a page of an entity's view.
    """
    if role is None:
        return False
    if identity in table.ENTITY_RIGHTS:
        if action.startswith("action:"):
            return table.may(role, identity, "v") and table.may_act(role, identity, action[7:])
        if action.startswith("page:"):
            return table.may(role, identity, "v") and table.may_open(role, f"{identity}:{action[5:]}")
        letter = ACTION_LETTERS.get(action)
        return letter is not None and table.may(role, identity, letter)
    if identity in table.PAGES:
        return action == "list" and table.may_open(role, identity)
    return False


class PortalAuthorization(AuthorizationBackend):
    """Role-based permissions from ``views.permissions``, checked on every admin route."""

    async def load(self, request: Request) -> None:
        """Refuse (403) an index, custom page or action the staff member may not open."""
        needed = route_permission(request.scope.get("endpoint"))
        if needed is not None and not allowed(role_of(request), *needed):
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN)

    def has_permission(self, request: Request, identity: str, action: str, obj: Any | None = None) -> bool:
        """True when the table lets the request's role do ``action`` on ``identity``.

        Row scope is not decided here but in the views' queries (``scope()``): a row
        outside the scope is never loaded, so it never reaches ``obj``.
        """
        return allowed(role_of(request), identity, str(action))


def check_configuration(admin: Any) -> None:
    """Fail loudly when the permission table and the admin's views disagree.

    Raises:
        ImproperlyConfigured: a view, action or page without a table entry (or an
            entry without a view), a right the view switched off, or a row that
            grants something without ``v``.
    """
    problems: list[str] = []
    entities = {v.identity: v for v in admin.views if isinstance(v, ModelView)}
    pages = {"index"}
    entity_pages: set[str] = set()
    for view in admin.views:
        for _, member in inspect.getmembers(view, predicate=inspect.ismethod):
            if getattr(member, "_action", False):
                continue  # an action's POST route: checked as the action
            if getattr(member, "_exposed", False) and not getattr(member, "_permission", None):
                if isinstance(view, ModelView):
                    entity_pages.add(f"{view.identity}:{member.__name__}")
                else:
                    pages.add(getattr(member, "_identity", member.__name__))
    for identity, view in entities.items():
        row = table.ENTITY_RIGHTS.get(identity)
        if row is None:
            problems.append(f"view {identity!r} has no row in ENTITY_RIGHTS")
            continue
        for role, letters in zip(table.ROLES, row):
            unknown = set(letters) - set(table.RIGHT_LETTERS)
            if unknown:
                problems.append(f"{identity}/{role.value}: unknown rights {sorted(unknown)}")
            if letters and "v" not in letters:
                problems.append(f"{identity}/{role.value}: rights {letters!r} without 'v'")
            for letter in letters:
                flag = LETTER_FLAGS.get(letter)
                if flag and not getattr(view, flag):
                    problems.append(f"{identity}/{role.value}: grants {letter!r} but the view has {flag} = False")
        asked = {a[len("action:"):] for a in view._authorization_actions() if str(a).startswith("action:")}
        granted = set(table.ACTIONS.get(identity, {}))
        for slug in sorted(asked - granted):
            problems.append(f"action {identity}:{slug} has no entry in ACTIONS")
        for slug in sorted(granted - asked):
            problems.append(f"ACTIONS names {identity}:{slug}, which the view does not offer")
        for slug, roles in table.ACTIONS.get(identity, {}).items():
            for role in roles:
                if not table.may(role, identity, "v"):
                    problems.append(f"action {identity}:{slug} granted to {role.value} who may not view {identity}")
    for identity in set(table.ENTITY_RIGHTS) - set(entities):
        problems.append(f"ENTITY_RIGHTS names {identity!r}, which is not an admin view")
    for page in sorted(entity_pages - set(table.ENTITY_PAGES)):
        problems.append(f"page {page!r} has no entry in ENTITY_PAGES")
    for page, slug in table.ENTITY_PAGES.items():
        if page not in entity_pages:
            problems.append(f"ENTITY_PAGES names {page!r}, which is not a page of an admin view")
        if slug not in table.ACTIONS.get(page.split(":")[0], {}):
            problems.append(f"ENTITY_PAGES {page!r} needs action {slug!r}, which ACTIONS does not list")
    for page in sorted(pages - set(table.PAGES)):
        problems.append(f"page {page!r} has no entry in PAGES")
    if problems:
        raise ImproperlyConfigured("Permission table problems:\n  " + "\n  ".join(problems))
