"""Bad input to every admin form, action, page and list: never a 500, nothing written when refused.

Hypothesis sends junk (``tests.fuzzing``) to what the admin offers, found from the admin
itself so a new view is covered without editing this file:

* the create and edit form of every ``ModelView`` that has one (fields read from the
  rendered form);
* the list page and the CSV/JSON export of every ``ModelView``: ``page``, ``pageSize``,
  ``sortBy``, ``sort``, ``search`` and every filter parameter the list page links to;
* every workflow action (``views._actions.row_action``): the confirmation page's ``pks``
  and the POST's fields, with a valid CSRF token;
* every custom page of a view with a form (front desk booking, receive stock, stock
  count) and their search pickers; ids in detail/edit/delete URLs; the ajax lookups;
* the dashboard's and the reports' query parameters, the login form, the change-password form.

Every form is also swept (``tests.fuzzing.edge_cases``): each field in turn gets each
edge value of its kind (numbers past the columns, non-finite decimals, non-ASCII digits,
calendar edges, text past the columns), the others staying believable, so the checks
behind the first field are reached every run, not only when Hypothesis happens to.

Each request is checked by ``tests.fuzzing.Exchanger``: below 500, no internal error on
the page, redirects stay on the site, and the database is unchanged unless the request
was accepted (tables a refused request may write are named there).
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, update

from models import StaffUser, ThrottleBucket
from portal.core import clock
from portal.core.db import transaction
from tests.access_world import World
from tests.factories import PASSWORD
from tests.fuzz_targets import (  # noqa: F401 - admin and world are fixtures
    AJAX,
    CREATABLE,
    EDITABLE,
    FORM_PAGES,
    LISTED,
    LOOKUP_PAGES,
    MODEL_VIEWS,
    REPORTS,
    ROW_ACTIONS,
    admin,
    all_ids,
    edit_target,
    log_in_as,
    the_form,
    world,
    writer,
)
from tests.fuzzing import (
    EXPORT_WRITES,
    LOGIN_WRITES,
    Exchanger,
    edge_cases,
    form_data,
    fuzz,
    query_values,
    url_junk,
)
from views.permissions import may


def test_the_catalogue_holds_every_kind_of_target():
    """The fuzz below covers what the admin registers; this fails if discovery breaks."""
    assert {"patient", "clinic_session", "staff_user", "medicine"} <= set(CREATABLE)
    assert ("appointment", "cancel") in ROW_ACTIONS and ("prescription", "dispense") in ROW_ACTIONS
    assert {p for _, p in FORM_PAGES} >= {"/book", "/receive", "/count/{pk}"}
    assert {p for _, p in LOOKUP_PAGES} >= {"/book/lookup", "/receive/lookup"}
    assert len(REPORTS) == 4 and AJAX


# -- create and edit forms ------------------------------------------------------------------

#: Values that make a copied row acceptable as a new one (unique fields changed).
CREATE_BASELINES = {
    "department": {"code": "FUZZ", "name": "Fuzz clinic"},
    "icd10_code": {"code": "Z99", "title": "Fuzz"},
    "staff_user": {"username": "fuzz.user", "new_password": "a long enough password"},
    "prescription": {"number": "RX-FUZZ-1"},
    "supplier": {"name": "Fuzz supplies"},
    "medicine": {"name": "fuzzamol"},
    "doctor": {"phone": "+8613911112222"},
    "clinic_session": {"session_date": (clock.today() + timedelta(days=40)).isoformat()},
    "encounter": {"appointment": ""},
}


@pytest.mark.parametrize("identity", CREATABLE)
def test_create_form_never_fails_on_bad_input(admin, engine, world, identity):
    url = f"/admin/{identity}/create"
    role = writer(identity, "c")
    if role != "admin":
        log_in_as(admin, world, role)
    form = the_form(admin, url)
    # a believable new row: the values of an existing one (unique ones then collide: also a
    # refusal), or the create form's own defaults for rows nobody edits
    baseline = (the_form(admin, f"/admin/{identity}/edit/{edit_target(world, identity)}").defaults()
                if may(role, identity, "e") else form.defaults())
    baseline.update(CREATE_BASELINES.get(identity, {}))

    send = Exchanger(admin, engine)

    @fuzz(15)
    @given(data=form_data(form, baseline=baseline, all_ids=all_ids(world), today=clock.today()))
    def run(data):
        send("POST", url, data=data, may_write=True, what=f"create {identity}")

    run()


@pytest.mark.parametrize("identity", EDITABLE)
def test_edit_form_never_fails_on_bad_input(admin, engine, world, identity):
    url = f"/admin/{identity}/edit/{edit_target(world, identity)}"
    form = the_form(admin, url)
    send = Exchanger(admin, engine)
    for name, data in edge_cases(form):  # the create form has the same fields and checks
        send("POST", url, data=data, may_write=True, what=f"edit {identity}, edge value in {name}")

    @fuzz(15)
    @given(data=form_data(form, all_ids=all_ids(world), today=clock.today()))
    def run(data):
        send("POST", url, data=data, may_write=True, what=f"edit {identity}")

    run()


# -- list pages and exports -----------------------------------------------------------------

def list_params(offered: dict[str, set[str]], searchable: bool) -> st.SearchStrategy[dict]:
    """Query parameters for a list: each known one left out, junk, or a value the page offers."""
    names = {"page", "pageSize", "sortBy", "sort", *offered} | ({"search"} if searchable else set())
    optional = {}
    for name in sorted(names):
        values = sorted(offered.get(name, ()))
        optional[name] = st.one_of(url_junk, st.sampled_from(values)) if values else url_junk
    return st.fixed_dictionaries({}, optional=optional)


@pytest.mark.parametrize("identity", LISTED)
def test_list_and_export_never_fail_on_bad_query_params(admin, engine, world, identity):
    view = next(v for v in MODEL_VIEWS if v.identity == identity)
    page = admin.get(f"/admin/{identity}/list")
    assert page.status_code == 200
    offered = query_values(page.text, f"/{identity}/list")

    send = Exchanger(admin, engine)

    @fuzz(20)
    @given(params=list_params(offered, bool(view.column_searchable_list)),
           target=st.one_of(st.sampled_from(["list", "list", "list", "export/csv", "export/json"]),
                            url_junk.map(lambda t: f"export/{quote(t, safe='')}")))
    def run(params, target):
        response = send("GET", f"/admin/{identity}/{target}", params=params,
                        allowed=EXPORT_WRITES if target in ("export/csv", "export/json") else None,
                        what=f"{identity} {target}")
        assert response.status_code in (200, 302, 400, 404), response.status_code

    run()


# -- workflow actions -----------------------------------------------------------------------

def pk_lists(ids: list[str]) -> st.SearchStrategy[str]:
    """A ``pks`` value: junk, or a comma-separated list of ids and junk."""
    one = st.one_of(st.sampled_from(ids), url_junk)
    return st.one_of(url_junk, st.lists(one, max_size=4).map(",".join))


#: A believable reason for the actions that ask for one.
REASON = {"reason": "Checked with the patient"}


@pytest.mark.parametrize("identity, slug", ROW_ACTIONS)
def test_row_action_never_fails_on_bad_input(admin, engine, world, identity, slug):
    url = f"/admin/{identity}/action/{slug}"
    form = the_form(admin, f"{url}?pks={world.sample[identity]}")
    ids = all_ids(world)
    send = Exchanger(admin, engine)
    for name, data in edge_cases(form, keep=("csrf_token", "next"), baseline=REASON):
        send("POST", url, data=data, may_write=True, what=f"action {identity}/{slug}, edge value in {name}")

    @fuzz(12)
    @given(data=form_data(form, keep=("csrf_token",), baseline=REASON, all_ids=ids, today=clock.today()),
           get_pks=pk_lists(ids), post=st.booleans())
    def run(data, get_pks, post):
        if post:
            send("POST", url, data=data, may_write=True, what=f"action {identity}/{slug}")
        else:
            send("GET", url, params={"pks": get_pks}, what=f"action page {identity}/{slug}")

    run()


# -- custom pages with forms ----------------------------------------------------------------

def page_baseline(world: World) -> dict[str, str]:
    """Believable values for the custom pages' fields (booking, receiving, counting)."""
    return {
        "clinic_session_id": world.sample["clinic_session"], "patient_id": world.foreign["patient"], "channel": "phone",
        "medicine_id": str(world.medicine_id), "lot_number": "L-2027-01",
        "expiry_date": clock.today().replace(year=clock.today().year + 1).isoformat(), "quantity": "12",
        "unit_cost": "0.35", "supplier_id": str(world.supplier_id), "counted_quantity": "95",
        "reason": "Monthly stocktake",
    }


@pytest.mark.parametrize("identity, path", FORM_PAGES)
def test_custom_page_form_never_fails_on_bad_input(admin, engine, world, identity, path):
    url = f"/admin/{identity}" + path.replace("{pk}", world.sample[identity])
    form = the_form(admin, url)
    baseline = {k: v for k, v in page_baseline(world).items() if k in form.fields}
    send = Exchanger(admin, engine)
    for name, data in edge_cases(form, keep=("csrf_token",), baseline=baseline):
        send("POST", url, data=data, may_write=True, what=f"page {url}, edge value in {name}")

    @fuzz(20)
    @given(data=form_data(form, keep=("csrf_token",), baseline=baseline, all_ids=all_ids(world),
                          today=clock.today()),
           query=st.fixed_dictionaries({}, optional={"clinic_session_id": url_junk}),
           pk=st.one_of(url_junk, st.sampled_from(all_ids(world))))
    def run(data, query, pk):
        send("GET", url, params=query, what=f"page {url}")
        if "{pk}" in path:
            other = f"/admin/{identity}" + path.replace("{pk}", quote(pk, safe=""))
            send("GET", other, what=f"page {other}")
        send("POST", url, data=data, may_write=True, what=f"page {url}")

    run()


def test_search_pickers_never_fail_on_bad_input(admin, engine, world):
    """Every custom page's picker and every sqladmin ajax lookup, with junk names and terms."""
    pickers = [*(f"/admin/{i}{p}" for i, p in LOOKUP_PAGES), *(f"/admin/{i}/ajax/lookup" for i, _ in AJAX)]
    names = sorted({name for _, name in AJAX} | {"clinic_session_id", "patient_id", "medicine_id"})
    send = Exchanger(admin, engine)

    @fuzz(30)
    @given(url=st.sampled_from(sorted(set(pickers))),
           params=st.fixed_dictionaries({}, optional={"name": st.one_of(st.sampled_from(names), url_junk),
                                                      "term": url_junk}))
    def run(url, params):
        response = send("GET", url, params=params, what="lookup")
        assert response.status_code in (200, 400)

    run()


# -- ids in URLs -----------------------------------------------------------------------------

def test_ids_in_urls_never_fail(admin, engine, world):
    """Details, edit and delete of every view with junk ids (only unknown rows can be deleted)."""
    ids = all_ids(world)
    send = Exchanger(admin, engine)

    @fuzz(40)
    @given(identity=st.sampled_from(LISTED), pk=st.one_of(url_junk, st.sampled_from(ids)),
           page=st.sampled_from(["details", "edit"]), delete_pks=pk_lists(ids))
    def run(identity, pk, page, delete_pks):
        send("GET", f"/admin/{identity}/{page}/{quote(pk, safe='')}", what=f"{identity} {page}")
        # sqladmin answers a delete with the list's URL, carrying ?error= when it refused
        response = send("DELETE", f"/admin/{identity}/delete", params={"pks": delete_pks},
                        may_write=True, refused=lambda r: r.status_code >= 400 or "error=" in r.text,
                        what=f"{identity} delete")
        assert response.status_code in (200, 400, 403, 404)

    run()


# -- dashboard and reports ------------------------------------------------------------------

def test_dashboard_never_fails_on_bad_query_params(admin, engine, world):
    send = Exchanger(admin, engine)

    @fuzz(20)
    @given(params=st.fixed_dictionaries({}, optional={
        "day": st.one_of(url_junk, st.dates().map(date.isoformat)),
        "department": st.one_of(url_junk, st.just(str(world.department_id))),
    }))
    def run(params):
        response = send("GET", "/admin/", params=params, what="dashboard")
        assert response.status_code in (200, 400)

    run()


def test_reports_never_fail_on_bad_query_params(admin, engine, world):
    paths = [type(r).page._path for r in REPORTS]
    exports = set()
    for path in paths:
        page = admin.get(f"/admin{path}")
        assert page.status_code == 200
        exports |= {v for v in query_values(page.text, path).get("export", ()) if v}
    send = Exchanger(admin, engine)

    @fuzz(30)
    @given(path=st.sampled_from(paths), params=st.fixed_dictionaries({}, optional={
        "date_from": st.one_of(url_junk, st.dates().map(date.isoformat)),
        "date_to": st.one_of(url_junk, st.dates().map(date.isoformat)),
        "department": st.one_of(url_junk, st.just(str(world.department_id))),
        "grain": st.one_of(url_junk, st.sampled_from(["day", "month"])),
        "export": st.one_of(url_junk, st.sampled_from(sorted(exports))),
    }))
    def run(path, params):
        response = send("GET", f"/admin{path}", params=params, allowed=EXPORT_WRITES, what=f"report {path}")
        assert response.status_code in (200, 400, 404)

    run()


# -- login and password ----------------------------------------------------------------------

def test_login_form_never_fails_on_bad_input(client, engine, world):
    form = the_form(client, "/admin/login")  # with its pre-login CSRF token, kept in every example
    send = Exchanger(client, engine)
    for name, data in edge_cases(form, keep=("csrf_token",), baseline={"username": "admin"}):
        _forget_failed_logins(engine)
        response = send("POST", "/admin/login", data=data, allowed=LOGIN_WRITES, what=f"login, edge value in {name}")
        assert response.status_code == 400

    @fuzz(10)
    @given(data=form_data(form, keep=("csrf_token",), baseline={"username": "admin"}))
    def run(data):
        _forget_failed_logins(engine)
        response = send("POST", "/admin/login", data=data, allowed=LOGIN_WRITES, what="login")
        assert response.status_code in (400, 429)

    run()


def _forget_failed_logins(engine) -> None:
    """Reset the login throttle, so every example reaches the password check."""
    with transaction(engine) as db:
        db.execute(delete(ThrottleBucket))
        db.execute(update(StaffUser).values(failed_logins=0, locked_until=None))


def test_change_password_form_never_fails_on_bad_input(admin, engine, world):
    form = the_form(admin, "/admin/password")
    send = Exchanger(admin, engine)
    baseline = {"current_password": PASSWORD}

    def refuse_only(data: dict) -> dict:
        new = data.get("new_password")
        if data.get("current_password") == PASSWORD and isinstance(new, str) and new == data.get("new_password_again"):
            data["new_password_again"] = f"{new}!"  # never accept: the session must live on
        return data

    for name, data in edge_cases(form, keep=("csrf_token",), baseline=baseline):
        response = send("POST", "/admin/password", data=refuse_only(data), what=f"change password, edge in {name}")
        assert response.status_code == 400

    @fuzz(10)
    @given(data=form_data(form, keep=("csrf_token",), baseline=baseline))
    def run(data):
        response = send("POST", "/admin/password", data=refuse_only(data), what="change password")
        assert response.status_code in (400, 403)

    run()
