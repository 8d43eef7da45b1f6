"""Every role through every admin screen, checked against the permission table itself.

For each role and each view: the menu entry, list, detail, create form, edit form,
export and every ajax lookup answer 2xx/3xx when ``views.permissions`` grants the right
and 403 when it does not; forbidden create, edit and delete requests change nothing;
allowed deletes delete. Then every workflow action and every custom page.
"""

from __future__ import annotations

import re

import pytest
from sqladmin import BaseView, ModelView
from sqladmin.exceptions import ImproperlyConfigured
from starlette.routing import Mount

import views
from models import Role
from tests.access_world import build_world, fingerprint, make_disposable, row_exists
from tests.factories import login
from views import permissions

MODEL_VIEWS = [v for v in views.ALL_VIEWS if getattr(v, "model", None) is not None]
ROLES = [r.value for r in Role]


def _ok(status: int) -> bool:
    return 200 <= status < 400


def _admin_routes(app) -> list:
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    return list(mount.app.routes)


def _actions(app, identity: str) -> list[tuple[str, str]]:
    """(slug, path) of every ``@action`` route of ``identity``'s view."""
    prefix = f"action-{identity}-"
    return [(r.name[len(prefix):], "/admin" + r.path) for r in _admin_routes(app)
            if (getattr(r, "name", "") or "").startswith(prefix)]


def _owner(route):
    return getattr(getattr(route, "endpoint", None), "__self__", None)


def _entity_pages(app, identity: str) -> list[tuple[str, str]]:
    """(method name, path) of every page a model view exposes (not its action POSTs)."""
    return [
        (route.endpoint.__name__, "/admin" + route.path) for route in _admin_routes(app)
        if isinstance(_owner(route), ModelView) and _owner(route).identity == identity
        and getattr(route.endpoint, "_exposed", False) and not getattr(route.endpoint, "_action", False)
    ]


def _has_post(app, path: str) -> bool:
    return any(getattr(r, "methods", None) and "POST" in r.methods and "/admin" + r.path == path
               for r in _admin_routes(app))


def _pages(app) -> dict[str, str]:
    """Custom page identity -> path, from the admin's routes (plus the index)."""
    pages = {"index": "/admin/"}
    for route in _admin_routes(app):
        owner = _owner(route)
        if isinstance(owner, BaseView) and not isinstance(owner, ModelView) and getattr(route.endpoint, "_exposed", False):
            pages[route.endpoint._identity] = "/admin" + route.path
    return pages


def _model_of(identity: str):
    return next(v.model for v in MODEL_VIEWS if v.identity == identity)


def _denied_and_unchanged(engine, send) -> None:
    before = fingerprint(engine)
    response = send()
    assert response.status_code == 403, (response.request.method, response.request.url, response.status_code)
    assert fingerprint(engine) == before, f"{response.request.url} changed something"


@pytest.mark.parametrize("role", ROLES)
def test_role_walks_every_view_action_and_page(role, app, client, engine):
    world = build_world(engine)
    assert login(client, role).status_code == 302

    index = client.get("/admin/")
    assert index.status_code == 200
    for view in MODEL_VIEWS:
        identity, sample = view.identity, world.sample[view.identity]
        rights = permissions.rights(role, identity)
        where = f"{role} on {identity}"
        # The menu shows exactly the entities the role may view.
        assert (f'/admin/{identity}/list"' in index.text) == ("v" in rights), where

        for path, right in (
            (f"/admin/{identity}/list", "v"),
            (f"/admin/{identity}/details/{sample}", "v"),
            (f"/admin/{identity}/create", "c"),
            (f"/admin/{identity}/edit/{sample}", "e"),
            (f"/admin/{identity}/export/csv", "x"),
        ):
            response = client.get(path)
            assert _ok(response.status_code) == (right in rights), (where, path, response.status_code)
            if right not in rights:
                assert response.status_code == 403, (where, path)

        form_allowed = "c" in rights or "e" in rights
        for name in view.form_ajax_refs:
            response = client.get(f"/admin/{identity}/ajax/lookup", params={"name": name, "term": "a"})
            assert response.status_code == (200 if form_allowed else 403), (where, name)

        if "c" not in rights:
            _denied_and_unchanged(engine, lambda: client.post(f"/admin/{identity}/create", data={}))
        if "e" not in rights:
            _denied_and_unchanged(engine, lambda: client.post(f"/admin/{identity}/edit/{sample}", data={}))
        if "d" not in rights:
            _denied_and_unchanged(engine, lambda: client.delete(f"/admin/{identity}/delete", params={"pks": sample}))
            assert row_exists(engine, view.model, sample)
        else:
            spare = make_disposable(engine, identity, world)
            assert spare is not None, f"no disposable row for {identity}"
            response = client.delete(f"/admin/{identity}/delete", params={"pks": spare})
            assert response.status_code == 200 and "error=" not in response.text, (where, response.text)
            assert not row_exists(engine, view.model, spare), where

        # Workflow actions: GET is the confirmation page (changes nothing); a forbidden
        # POST is refused before anything happens.
        actions = _actions(app, identity)
        assert {slug for slug, _ in actions} <= set(permissions.ACTIONS.get(identity, {})), identity
        for slug, url in actions:
            if permissions.may_act(role, identity, slug):
                response = client.get(url, params={"pks": sample})
                assert _ok(response.status_code), (where, slug, response.status_code)
            else:
                _denied_and_unchanged(engine, lambda: client.get(url, params={"pks": sample}))
                if _has_post(app, url):
                    _denied_and_unchanged(engine, lambda: client.post(url, data={"pks": sample}))
        # Pages of the view (booking, receiving stock, stock count): as their action.
        for method, path in _entity_pages(app, identity):
            slug = permissions.ENTITY_PAGES[f"{identity}:{method}"]
            url = path.replace("{pk}", sample)
            if permissions.may_act(role, identity, slug):
                assert _ok(client.get(url).status_code), (where, method)
            else:
                _denied_and_unchanged(engine, lambda: client.get(url))
                if _has_post(app, path):
                    _denied_and_unchanged(engine, lambda: client.post(url, data={}))

    for page, path in _pages(app).items():
        response = client.get(path)
        assert _ok(response.status_code) == permissions.may_open(role, page), (role, page, response.status_code)
        if not permissions.may_open(role, page):
            assert response.status_code == 403


def test_table_covers_every_view_and_role():
    """Each admin view has a row, each row one column per role, in the table's own order."""
    assert set(permissions.ENTITY_RIGHTS) == {v.identity for v in MODEL_VIEWS}
    assert permissions.ROLES == tuple(Role)
    for identity, row in permissions.ENTITY_RIGHTS.items():
        assert len(row) == len(Role), identity
        for letters in row:
            assert re.fullmatch(r"v?c?e?d?x?", letters), (identity, letters)


def test_role_defaults_of_the_issue():
    """The defaults issue #5 asks for, spelled out."""
    may = permissions.may
    # Receptionists manage patients, clinic sessions and appointments, and see no pharmacy stock.
    assert all(may("receptionist", "patient", r) for r in "vce")
    assert all(may("receptionist", "clinic_session", r) for r in "vced")
    assert may("receptionist", "appointment", "v")
    assert not any(may("receptionist", e, "v") for e in ("medicine", "stock_batch", "stock_movement", "supplier"))
    # Pharmacists manage the pharmacy and read prescriptions.
    for entity in ("medicine", "supplier"):
        assert all(may("pharmacist", entity, r) for r in "vced")
    assert may("pharmacist", "stock_batch", "v") and may("pharmacist", "stock_movement", "v")
    assert permissions.rights("pharmacist", "prescription") == "vx"
    # Doctors write encounters and prescriptions (for their own patients: row scope).
    assert all(may("doctor", e, r) for e in ("encounter", "prescription") for r in "vce")
    # Only admins manage staff, departments and the audit log; the log is read-only.
    for entity in ("staff_user", "audit_event"):
        assert [r for r in ROLES if permissions.rights(r, entity)] == ["admin"]
    assert [r for r in ROLES if may(r, "department", "e")] == ["admin"]
    assert permissions.rights("admin", "audit_event") == "vx"


def test_start_up_check_refuses_a_table_that_disagrees_with_the_views(app, monkeypatch):
    """A right the view switched off, or a view missing from the table, fails loudly."""
    from fastapi import FastAPI

    from views import create_admin

    engine = app.state.engine
    bad = dict(permissions.ENTITY_RIGHTS, **{"audit_event": ("vcedx", "", "", "", "")})
    monkeypatch.setattr(permissions, "ENTITY_RIGHTS", bad)
    with pytest.raises(ImproperlyConfigured, match="can_edit = False"):
        create_admin(FastAPI(), engine)
    missing = {k: v for k, v in permissions.ENTITY_RIGHTS.items() if k != "supplier"}
    missing["audit_event"] = ("vx", "", "", "", "")
    monkeypatch.setattr(permissions, "ENTITY_RIGHTS", missing)
    with pytest.raises(ImproperlyConfigured, match="'supplier' has no row"):
        create_admin(FastAPI(), engine)


def test_anonymous_requests_are_sent_to_login(client, engine):
    """Nothing of the admin answers without a session."""
    for identity in ("patient", "audit_event"):
        response = client.get(f"/admin/{identity}/list")
        assert response.status_code == 302 and response.headers["location"].endswith("/admin/login")
    assert client.get("/admin/password").status_code == 302


@pytest.mark.parametrize("role", ROLES)
def test_row_scopes_are_the_ones_the_table_names(role, engine):
    """A view narrows its rows for exactly the roles ``ROW_SCOPED`` names."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from models import StaffUser

    request = SimpleNamespace(state=SimpleNamespace(staff=StaffUser(id=1, username="x", full_name="x",
                                                                     role=Role(role), doctor_id=1, password_hash="")))
    for view_class in MODEL_VIEWS:
        view = view_class.__new__(view_class)  # scope() needs no admin
        stmt = select(view_class.model)
        narrowed = view.scope(request, stmt) is not stmt
        assert narrowed == (not permissions.sees_all_rows(role, view_class.identity)), (role, view_class.identity)
