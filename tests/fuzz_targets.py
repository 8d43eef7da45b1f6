"""What the admin offers, for the bad-input tests: its forms, lists, actions and pages,
read from the admin that ``portal.app.create_app`` builds, and a logged-in world to fuzz.

``CREATABLE``, ``EDITABLE``, ``LISTED``, ``ROW_ACTIONS``, ``FORM_PAGES``, ``LOOKUP_PAGES``,
``REPORTS`` and ``AJAX`` list the targets, so a new view, action or page is fuzzed
without editing the tests. The fixtures ``world`` (``tests.access_world``'s hospital)
and ``admin`` (a client logged in as the administrator) are shared by
``test_fuzz_admin.py``, ``test_fuzz_bodies.py`` and ``test_bad_input.py``.
"""

from __future__ import annotations

import pytest
from sqladmin import Admin, ModelView
from sqlalchemy import create_engine, func, select, update
from starlette.routing import Mount

from models import Appointment, ClinicSession, Role
from portal.core import clock
from portal.core.db import transaction
from tests.access_world import World, build_world, session_cookie
from tests.admin_html import csrf_token_of
from tests.factories import CSRF_HEADER
from tests.fuzzing import forms_on
from views._actions import ActionsMixin
from views.permissions import may

# -- what the admin offers ----------------------------------------------------------------

def _owner(route):
    return getattr(getattr(route, "endpoint", None), "__self__", None)


def admin_of(app) -> Admin:
    """The sqladmin ``Admin`` mounted at ``/admin`` of a portal app."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    return next(_owner(r) for r in mount.app.routes if isinstance(_owner(r), Admin))


def _catalogue():
    from portal.app import create_app

    admin = admin_of(create_app(create_engine("sqlite://")))  # never queried: only its views are read
    model_views = [v for v in admin.views if isinstance(v, ModelView)]
    pages = []
    for view in model_views:
        for name in dir(type(view)):
            method = getattr(type(view), name, None)
            if getattr(method, "_exposed", False) and not hasattr(method, "_row_action"):
                pages.append((view.identity, name, method._path, tuple(method._methods)))
    return admin, model_views, pages


ADMIN, MODEL_VIEWS, CUSTOM_PAGES = _catalogue()
CREATABLE = [v.identity for v in MODEL_VIEWS if v.can_create]
EDITABLE = [v.identity for v in MODEL_VIEWS if v.can_edit]
LISTED = [v.identity for v in MODEL_VIEWS]
ROW_ACTIONS = [(v.identity, slug) for v in MODEL_VIEWS if isinstance(v, ActionsMixin) for slug in v.row_actions()]
FORM_PAGES = [(identity, path) for identity, _, path, methods in CUSTOM_PAGES if "POST" in methods]
LOOKUP_PAGES = [(identity, path) for identity, name, path, methods in CUSTOM_PAGES
                if "POST" not in methods and name.endswith("_lookup")]
REPORTS = [v for v in ADMIN.views if not isinstance(v, ModelView) and getattr(v, "slug", "")]
AJAX = [(v.identity, name) for v in MODEL_VIEWS for name in v.form_ajax_refs]


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def world(engine) -> World:
    """The access tests' hospital (``tests.access_world``), its sessions' counters set
    from the appointments it inserts directly (so booking through the services works)."""
    world = build_world(engine)
    with transaction(engine) as db:  # the world inserts appointments directly: count them in
        used = select(func.max(Appointment.queue_number)).where(Appointment.clinic_session_id == ClinicSession.id)
        held = select(func.count()).where(Appointment.clinic_session_id == ClinicSession.id, Appointment.active_marker == 1)
        db.execute(update(ClinicSession).values(last_queue_number=func.coalesce(used.scalar_subquery(), 0),
                                                booked_count=held.scalar_subquery()))
    return world


def writer(identity: str, right: str) -> str:
    """The role the fuzz writes ``identity`` as: the administrator when the permission table
    lets them (``right``: ``c`` create, ``e`` edit), else the first role that may (a ward's
    inpatient notes are written by doctors and nurses only)."""
    if may("admin", identity, right):
        return "admin"
    return next(role.value for role in Role if may(role, identity, right))


def log_in_as(client, world: World, role: str) -> None:
    """Log ``client`` in as the world's ``role`` user: a signed session cookie (no argon2 per
    test) and the login's CSRF token in the X-CSRF-Token header, as sqladmin's JavaScript
    sends it (read from the page's meta tag); a form's own csrf_token field is fuzzed like
    any other."""
    now = clock.epoch_seconds()
    # "csrf": the session's CSRF value (views._csrf), there from the start so that no page
    # replaces the forged cookie with one of its own.
    client.cookies.set("portal_staff", session_cookie({"uid": world.staff[role], "epoch": 0, "iat": now,
                                                       "seen": now, "csrf": "fuzz-session-value"}))
    page = client.get("/admin/")
    assert page.status_code == 200
    client.headers[CSRF_HEADER] = csrf_token_of(page.text)


@pytest.fixture
def admin(client, world):
    """The client, logged in as the administrator (a signed session cookie: no argon2 per test).

    The test fails at the end if the fuzz logged the session out, since the examples
    after that would have tested only the login redirect.
    """
    log_in_as(client, world, "admin")
    yield client
    assert client.get("/admin/").status_code == 200, "the fuzz ended the admin session"


def all_ids(world: World) -> list[str]:
    """Every id of the world's rows, and a few around them (plausible and unknown ids)."""
    values = [*world.sample.values(), *world.foreign.values(), *map(str, world.staff.values())]
    ids = {int(v) for v in values if v.isdigit()}
    return sorted({str(i) for i in ids | {max(ids) + 1, 10**6}})


def edit_target(world: World, identity: str) -> str:
    """The row whose edit form is fuzzed: the sample row, but never the logged-in admin's
    own account (an accepted edit of it would end the session)."""
    return str(world.staff["nurse"]) if identity == "staff_user" else world.sample[identity]


def the_form(client, url: str):
    page = client.get(url)
    assert page.status_code == 200, f"GET {url}: {page.status_code}"
    forms = forms_on(page.text)
    assert forms, f"no form on {url}"
    return forms[-1]
