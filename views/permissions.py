"""Who may do what in the admin: the ONE permission table.

Read by ``views/authorization.py`` (the sqladmin ``AuthorizationBackend`` every admin
route asks) and by the table-driven test that walks every role through every screen.

Rights on an entity (a sqladmin view identity), one letter each:

    v  view the list and the detail pages (and see the menu entry)
    c  create      e  edit      d  delete      x  export (CSV/JSON, with the list's filters)

A view whose class switches a right off (``can_edit = False`` ...) never offers it;
the start-up check (``views.authorization.check_configuration``) refuses a table that
grants such a right, a right without ``v``, or an action or page it does not know.

Rows: ``v`` opens an entity; ``ROW_SCOPED`` names the entities whose rows a role sees
only in part, and each view's ``scope()`` says which part. Doctors see only their own
clinic sessions, appointments, encounters, prescriptions (and their lines) and the
patients who have an appointment with them. Everyone else sees every row of the
entities they may view (nurses find the day's lists on the dashboard and by filter).
"""

from __future__ import annotations

from models import Role
from portal.core.vocabulary import Entity as E

A, R, D, N, P = Role.admin, Role.receptionist, Role.doctor, Role.nurse, Role.pharmacist
L, C = Role.lab_technician, Role.cashier

#: Column order of ``ENTITY_RIGHTS``.
ROLES: tuple[Role, ...] = (A, R, D, N, P, L, C)
ALL_ROLES = frozenset(ROLES)

#: Every letter a right may have, and the sqladmin action each stands for.
RIGHT_LETTERS = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}

# fmt: off
#: entity -> rights of (admin, receptionist, doctor, nurse, pharmacist, lab technician, cashier).
ENTITY_RIGHTS: dict[str, tuple[str, str, str, str, str, str, str]] = {
    #                    admin    reception doctor   nurse    pharmacy lab      cashier
    E.appointment:       ("vx",     "vx",     "vx",     "v",      "",       "",      ""),
    E.patient:           ("vcedx",  "vcex",   "vx",     "v",      "",       "",      ""),
    E.encounter:         ("vcedx",  "",       "vcex",   "",       "",       "",      ""),
    E.clinic_session:    ("vcedx",  "vcedx",  "vx",     "v",      "",       "",      ""),
    E.doctor:            ("vcedx",  "v",      "v",      "v",      "",       "",      ""),
    E.department:        ("vcedx",  "v",      "v",      "v",      "",       "",      ""),
    E.prescription:      ("vcedx",  "",       "vcex",   "",       "vx",     "",      ""),
    E.prescription_item: ("vcedx",  "",       "vced",   "",       "vx",     "",      ""),
    E.medicine:          ("vcedx",  "",       "v",      "",       "vcedx",  "",      ""),
    E.stock_batch:       ("vx",     "",       "",       "",       "vx",     "",      ""),
    E.stock_movement:    ("vx",     "",       "",       "",       "vx",     "",      ""),
    E.supplier:          ("vcedx",  "",       "",       "",       "vcedx",  "",      ""),
    E.icd10_code:        ("vcex",   "",       "v",      "",       "v",      "",      ""),
    E.staff_user:        ("vcex",   "",       "",       "",       "",       "",      ""),   # deactivate, never delete
    E.audit_event:       ("vx",     "",       "",       "",       "",       "",      ""),   # append-only, even for admins
    E.ward:              ("vcedx",  "v",      "v",      "v",      "",       "",      ""),
    E.room:              ("vcedx",  "",       "v",      "v",      "",       "",      ""),
    E.bed:               ("vcedx",  "v",      "v",      "vx",     "",       "",      ""),   # status only through actions
    E.admission:         ("vx",     "v",      "vx",     "vx",     "",       "",      ""),   # moves only through actions
    E.bed_transfer:      ("vx",     "",       "v",      "vx",     "",       "",      ""),   # history, append-only
    E.inpatient_note:    ("vx",     "",       "vcx",    "vcx",    "",       "",      ""),   # ward notes, append-only
}

#: Workflow actions (``views._actions``: a confirm page, then a CSRF-checked POST):
#: entity -> action slug -> roles. An action also needs ``v`` on its entity, and acts
#: only on rows within the role's scope (a doctor completes only their own visits).
ACTIONS: dict[str, dict[str, frozenset[Role]]] = {
    E.appointment: {
        "book":           frozenset({A, R}),        # front desk booking page
        "confirm":        frozenset({A, R}),
        "check-in":       frozenset({A, R, N}),
        "complete":       frozenset({A, D}),
        "cancel":         frozenset({A, R}),
        "no-show":        frozenset({A, R, N}),
    },
    E.clinic_session: {
        "close":          frozenset({A, R}),
        "reopen":         frozenset({A, R}),
        "cancel-session": frozenset({A, R}),
    },
    E.prescription: {
        "dispense":         frozenset({A, P}),
        "dispense-partial": frozenset({A, P}),
        "cancel":           frozenset({A, D, P}),
    },
    E.bed: {
        "admit":           frozenset({A, N}),       # admit-to-this-bed page (bed board)
        "mark-cleaned":    frozenset({A, N}),
        "out-of-service":  frozenset({A, N}),
        "back-in-service": frozenset({A, N}),
    },
    E.admission: {
        "request":         frozenset({A, D}),       # request-admission page (doctor)
        "admit":           frozenset({A, N}),
        "reserve-bed":     frozenset({A, N}),
        "release-bed":     frozenset({A, N}),
        "transfer":        frozenset({A, N, D}),
        "order-discharge": frozenset({A, D}),
        "discharge":       frozenset({A, N}),
        "cancel":          frozenset({A, D, N}),
    },
    E.stock_batch: {
        "receive":        frozenset({A, P}),        # receive-stock page
        "count":          frozenset({A, P}),        # stock-count page
        "expire":         frozenset({A, P}),
        "quarantine":     frozenset({A, P}),
        "release":        frozenset({A, P}),
    },
}

#: Pages of an entity's view (``@expose`` on a ModelView, ``<identity>:<method>``) ->
#: the action whose roles may open them.
ENTITY_PAGES: dict[str, str] = {
    f"{E.appointment}:page_book":          "book",
    f"{E.appointment}:page_book_lookup":   "book",
    f"{E.stock_batch}:page_receive":        "receive",
    f"{E.stock_batch}:page_receive_lookup": "receive",
    f"{E.stock_batch}:page_count":          "count",
    f"{E.bed}:page_admit":                  "admit",
    f"{E.bed}:page_admit_lookup":           "admit",
    f"{E.admission}:page_request":          "request",
    f"{E.admission}:page_request_lookup":   "request",
}

#: Custom pages (``@expose`` on a BaseView, and the admin's index): identity -> roles.
PAGES: dict[str, frozenset[Role]] = {
    "index":             ALL_ROLES,             # the dashboard; its figures follow the role
    "change-password":   ALL_ROLES,
    "outpatient-volume": frozenset({A, R, N}),  # reports: hospital-wide figures
    "doctor-workload":   frozenset({A}),
    "pharmacy-report":   frozenset({A, P}),
    "bed-board":         frozenset({A, R, D, N}),
    "inpatient-census":  frozenset({A, D, N}),
}

#: Entities a role sees only in part (its own rows): role -> entities. The rule itself
#: is the view's ``scope()``; hospital-wide figures of these entities are not shown to it.
ROW_SCOPED: dict[Role, frozenset[str]] = {
    D: frozenset({E.clinic_session, E.appointment, E.patient, E.encounter, E.prescription, E.prescription_item}),
}
# fmt: on


def _role(role: Role | str) -> Role | None:
    try:
        return Role(getattr(role, "value", role))
    except ValueError:
        return None


def rights(role: Role | str, entity: str) -> str:
    """The right letters ``role`` has on ``entity`` (``""`` for an unknown role or entity)."""
    found = _role(role)
    row = ENTITY_RIGHTS.get(entity)
    if found is None or row is None:
        return ""
    return row[ROLES.index(found)]


def may(role: Role | str, entity: str, right: str) -> bool:
    """True when ``role`` has ``right`` (one letter of ``RIGHT_LETTERS``) on ``entity``."""
    return len(right) == 1 and right in rights(role, entity)


def may_act(role: Role | str, entity: str, slug: str) -> bool:
    """True when ``role`` may use the workflow action ``slug`` on ``entity``."""
    found = _role(role)
    return found is not None and found in ACTIONS.get(entity, {}).get(slug, frozenset())


def sees_all_rows(role: Role | str, entity: str) -> bool:
    """True when ``role`` sees every row of ``entity`` it may view (no row scope)."""
    found = _role(role)
    return found is not None and entity not in ROW_SCOPED.get(found, frozenset())


def may_open(role: Role | str, page: str) -> bool:
    """True when ``role`` may open the custom page ``page``."""
    found = _role(role)
    return found is not None and found in PAGES.get(page, frozenset())
