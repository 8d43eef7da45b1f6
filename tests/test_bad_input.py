"""Regression tests for the 500s the bad-input fuzz (``test_fuzz_*.py``) found, one per
cause, and the admin list's query-parameter rule (``views._list_params``).

Each request goes through ``tests.fuzzing.exchange``, which also checks that nothing
was written and that the page shows no internal error.
"""

from __future__ import annotations

import re

import pytest

from tests.fuzz_targets import admin, world  # noqa: F401 - fixtures
from tests.fuzzing import EXPORT_WRITES, exchange, forms_on


def reason(response) -> str:
    """The sentence of sqladmin's error page (or the whole text of a plain one)."""
    text = re.sub(r"<[^>]+>", " ", response.text)
    return " ".join(text.split())


def get(admin, engine, url, **params):  # noqa: F811
    return exchange(admin, engine, "GET", url, params=params, what="regression")


# -- list filters ---------------------------------------------------------------------------

@pytest.mark.parametrize("url, param, value", [
    ("/admin/appointment/list", "channel", " "),
    ("/admin/appointment/list", "status", "lost"),
    ("/admin/patient/list", "gender", "x"),
    ("/admin/staff_user/list", "role", "root"),
    ("/admin/stock_batch/list", "status", "all"),
    ("/admin/stock_movement/list", "kind", "gift"),
])
def test_an_unknown_choice_of_an_enum_filter_is_a_400_not_a_500(admin, engine, url, param, value):  # noqa: F811
    """Was: LookupError from the enum column type (validate_strings) while binding the value."""
    response = get(admin, engine, url, **{param: value})
    assert response.status_code == 400
    assert f"{param} must be one of" in reason(response)


@pytest.mark.parametrize("value", ["abc", "1.5", "9" * 30, "-" + "9" * 20])
def test_a_doctor_filter_that_is_not_an_id_is_a_400_not_a_500(admin, engine, value):  # noqa: F811
    """Was: ValueError from int() (sqladmin's ForeignKeyFilter), or OverflowError on SQLite."""
    response = get(admin, engine, "/admin/appointment/list", doctor_id=value)
    assert response.status_code == 400
    assert "doctor_id must be a whole number" in reason(response)


def test_a_doctor_filter_with_an_unknown_id_lists_nothing(admin, engine, world):  # noqa: F811
    own = world.names["own-appointment"]
    assert own not in get(admin, engine, "/admin/appointment/list", doctor_id="424242").text
    assert own in get(admin, engine, "/admin/appointment/list", doctor_id=str(world.doctor_id)).text


@pytest.mark.parametrize("param, value", [("created_at_from", "0001-01-01"), ("created_at_to", "9999-12-31"),
                                          ("birth_date_to", "0001-01-01T00:00")])
def test_a_date_at_the_end_of_the_calendar_is_a_400_not_a_500(admin, engine, param, value):  # noqa: F811
    """Was: OverflowError moving the local day to UTC (or a day on) in the From/To filter."""
    response = get(admin, engine, "/admin/patient/list", **{param: value})
    assert response.status_code == 400
    assert f"{param} must be a date" in reason(response)


def test_a_comparison_filter_takes_only_its_operations_and_typed_values(admin, engine):  # noqa: F811
    """Was: OverflowError on SQLite for a batch id past 64 bits."""
    url = "/admin/stock_movement/list"
    cases = [
        ({"batch_id": "1", "batch_id_op": "contains"}, "batch_id_op must be one of"),
        ({"batch_id": "1"}, "batch_id needs batch_id_op"),
        ({"batch_id": "9" * 30, "batch_id_op": "equals"}, "batch_id must be a whole number"),
    ]
    for params, words in cases:
        response = get(admin, engine, url, **params)
        assert response.status_code == 400 and words in reason(response), params
    assert get(admin, engine, url, batch_id="1", batch_id_op="equals").status_code == 200
    assert get(admin, engine, "/admin/medicine/list", category="x" * 101, category_op="contains").status_code == 400


def test_a_text_filter_offers_and_takes_contains(admin, engine):  # noqa: F811
    """sqladmin offered only "equals" on SQLModel's AutoString columns (views._filters.ColumnFilter)."""
    from tests.fuzzing import query_values

    offered = query_values(admin.get("/admin/doctor/list").text, "/doctor/list")
    assert {"equals", "contains", "starts_with", "ends_with"} <= offered["specialty_op"]
    assert get(admin, engine, "/admin/doctor/list", specialty="derma", specialty_op="contains").status_code == 200


def test_from_to_dates_take_only_dates(admin, engine):  # noqa: F811
    assert get(admin, engine, "/admin/clinic_session/list", session_date_from="2026-11-20").status_code == 200
    response = get(admin, engine, "/admin/clinic_session/list", session_date_from="2026-02-30")
    assert response.status_code == 400 and "session_date_from must be a date" in reason(response)


def test_preset_and_yes_no_filters_take_only_their_choices(admin, engine):  # noqa: F811
    for url, param, good, bad in [
        ("/admin/medicine/list", "stock", "below_reorder", "above"),
        ("/admin/medicine/list", "is_active", "true", "maybe"),
        ("/admin/stock_batch/list", "expiry", "soon", "later"),
        ("/admin/clinic_session/list", "held", "now", "yesterday"),
    ]:
        assert get(admin, engine, url, **{param: good}).status_code == 200
        response = get(admin, engine, url, **{param: bad})
        assert response.status_code == 400 and f"{param} must be one of" in reason(response)


# -- paging, sorting, search ----------------------------------------------------------------

def test_list_paging_and_sorting_take_only_what_the_page_offers(admin, engine):  # noqa: F811
    url = "/admin/appointment/list"
    for params, words in [
        ({"pageSize": "37"}, "pageSize must be one of 25, 50, 100"),
        ({"pageSize": "100000"}, "pageSize must be one of"),
        ({"pageSize": "0"}, "pageSize must be one of"),
        ({"page": "two"}, "page must be a page number"),
        ({"page": "1" * 12}, "page must be a page number"),
        ({"sortBy": "password_hash"}, "sortBy must be one of the sortable columns"),
        ({"sortBy": "status", "sort": "sideways"}, "sort must be asc or desc"),
        ({"search": "x" * 101}, "search takes at most 100 characters"),
    ]:
        response = get(admin, engine, url, **params)
        assert response.status_code == 400 and words in reason(response), (params, reason(response)[:300])
    for params in ({"pageSize": "50"}, {"sortBy": "status", "sort": "desc"}, {"search": "x" * 100}, {"unknown": "1"}):
        assert get(admin, engine, url, **params).status_code == 200, params


def test_every_link_and_filter_a_list_page_offers_is_accepted(admin, engine):  # noqa: F811
    """The rule refuses only what the pages do not offer: every sort, page size and filter
    link of every list, and every operation of its comparison filters, answers 200."""
    from urllib.parse import parse_qsl, urlsplit

    from tests.fuzz_targets import LISTED
    from tests.fuzzing import query_values

    for identity in LISTED:
        page = admin.get(f"/admin/{identity}/list")
        links = {h for h in re.findall(r'href="([^"]*)"', page.text) if f"/{identity}/list?" in h}
        for href in links:
            params = dict(parse_qsl(urlsplit(href.replace("&amp;", "&")).query))
            assert get(admin, engine, f"/admin/{identity}/list", **params).status_code == 200, href
        for name, values in query_values(page.text, f"/{identity}/list").items():
            if name.endswith(("_from", "_to")):
                assert get(admin, engine, f"/admin/{identity}/list", **{name: "2026-11-20"}).status_code == 200, name
            if name.endswith("_op"):
                for op in values:
                    sample = "2026-11-20" if "date" in name or name.endswith("_at_op") else "1"
                    params = {name: op, name[:-3]: sample}
                    assert get(admin, engine, f"/admin/{identity}/list", **params).status_code == 200, params


@pytest.mark.parametrize("page", ["0", "-5", "999999999"])
def test_a_page_out_of_range_is_redirected_to_the_nearest_page(admin, engine, page):  # noqa: F811
    response = get(admin, engine, "/admin/appointment/list", page=page)
    assert response.status_code == 302 and response.headers["location"].endswith("page=1")


def test_the_export_obeys_the_same_rule(admin, engine):  # noqa: F811
    response = exchange(admin, engine, "GET", "/admin/appointment/export/csv", params={"pageSize": "37"},
                        what="export")
    assert response.status_code == 400
    ok = exchange(admin, engine, "GET", "/admin/appointment/export/csv", params={"status": "pending"},
                  allowed=EXPORT_WRITES, what="export")
    assert ok.status_code == 200


# -- ids in URLs and in selections ------------------------------------------------------------

@pytest.mark.parametrize("page", ["details", "edit"])
@pytest.mark.parametrize("pk", ["%20", "abc", "1.5", "9" * 30])
def test_a_url_id_that_cannot_name_a_row_is_a_404_not_a_500(admin, engine, page, pk):  # noqa: F811
    """Was: ValueError from sqladmin's id coercion, or OverflowError on SQLite."""
    assert get(admin, engine, f"/admin/patient/{page}/{pk}").status_code == 404


def test_an_empty_url_id_is_a_404_not_a_500(admin, engine):  # noqa: F811
    assert get(admin, engine, "/admin/appointment/details/").status_code == 404


def test_a_selection_with_an_id_too_large_for_the_database_is_a_400_not_a_500(admin, engine):  # noqa: F811
    """Was: OverflowError on SQLite when the action's confirmation page looked the rows up."""
    for pks in ("9" * 19, "1," + "9" * 30, "+5", "١"):
        response = get(admin, engine, "/admin/appointment/action/confirm", pks=pks)
        assert response.status_code == 400 and "The selection is not valid." in reason(response), pks
    assert get(admin, engine, "/admin/stock_batch/action/count", pks="9" * 30).status_code == 400


# -- file parts -----------------------------------------------------------------------------

def test_a_file_in_an_admin_edit_form_is_a_400_not_a_500(admin, engine, world):  # noqa: F811
    """Was: AttributeError in sqladmin's form reading, which looks an empty file part up
    as an attribute of the row."""
    url = f"/admin/patient/edit/{world.sample['patient']}"
    for name in ("csrf_token", "full_name"):
        response = exchange(admin, engine, "POST", url, files={name: ("x.csv", b"")}, what="file in edit form")
        assert response.status_code == 400 and "This form takes no files" in reason(response)


def test_a_file_in_a_workflow_form_with_a_valid_token_is_a_400_not_a_500(admin, engine, world):  # noqa: F811
    """Was: a TypeError in the form's validators, which expect text (len() of a file)."""
    page = admin.get(f"/admin/appointment/action/cancel?pks={world.sample['appointment']}")
    token = forms_on(page.text)[-1].fields["csrf_token"].value
    response = exchange(admin, engine, "POST", "/admin/appointment/action/cancel",
                        data={"csrf_token": token, "pks": world.sample["appointment"]},
                        files={"reason": ("reason.txt", b"no show")}, what="file in action form")
    assert response.status_code == 400 and "This form takes no files" in reason(response)


# -- numbers beyond what the columns store ----------------------------------------------------

@pytest.mark.parametrize("identity, field, value", [
    ("clinic_session", "capacity", str(2**31)),
    ("clinic_session", "fee", "21474836.48"),
    ("medicine", "unit_price", str(2**63)),
    ("prescription_item", "duration_days", str(-(2**31) - 1)),
])
def test_a_whole_number_too_large_for_its_column_is_a_form_error(
        admin, engine, world, identity, field, value):  # noqa: F811
    """Was: "Python int too large to convert to SQLite INTEGER" on the form (SQLite), a
    database error with its SQL on MariaDB (INT is 32 bits there)."""
    url = f"/admin/{identity}/edit/{world.sample[identity]}"
    form = forms_on(admin.get(url).text)[-1]
    response = exchange(admin, engine, "POST", url, data={**form.defaults(), field: value}, what="edit")
    assert response.status_code == 400
    assert ("Enter a whole number from -2,147,483,648 to 2,147,483,647." in reason(response)
            or "Enter an amount from -21,474,836.48 to 21,474,836.47." in reason(response))


def test_a_number_too_large_for_a_float_is_a_form_error_not_a_500(admin, engine, world):  # noqa: F811
    """Was: OverflowError in WTForms' NumberRange (math.isnan of an int past 10**308)."""
    huge = "1" + "0" * 400
    for url, field, words in [
        (f"/admin/clinic_session/edit/{world.sample['clinic_session']}", "capacity", "Enter a whole number from"),
        (f"/admin/stock_batch/count/{world.sample['stock_batch']}", "counted_quantity", "The count is at most"),
        ("/admin/stock_batch/receive", "quantity", "Receive at most"),
    ]:
        form = forms_on(admin.get(url).text)[-1]
        response = exchange(admin, engine, "POST", url, data={**form.defaults(), field: huge}, what="huge number")
        assert response.status_code == 400 and words in reason(response), url


@pytest.mark.parametrize("value", ["9" * 30, "1e309", "-" + "9" * 30])
def test_an_amount_with_more_digits_than_a_decimal_holds_is_a_form_error(admin, engine, world, value):  # noqa: F811
    """Was: decimal.InvalidOperation rounding the amount to fen in MoneyField: a 500."""
    url = f"/admin/clinic_session/edit/{world.sample['clinic_session']}"
    form = forms_on(admin.get(url).text)[-1]
    response = exchange(admin, engine, "POST", url, data={**form.defaults(), "fee": value}, what="edit fee")
    assert response.status_code == 400 and "This amount is too large." in reason(response)


@pytest.mark.parametrize("identity, field", [("doctor", "bio"), ("prescription", "notes"), ("patient", "allergies")])
def test_text_longer_than_a_text_column_holds_is_a_form_error(admin, engine, world, identity, field):  # noqa: F811
    """Was: on MariaDB, "Data too long for column" with its SQL on the form (TEXT holds
    65,535 bytes); on SQLite the text was stored."""
    url = f"/admin/{identity}/edit/{world.sample[identity]}"
    form = forms_on(admin.get(url).text)[-1]
    response = exchange(admin, engine, "POST", url, data={**form.defaults(), field: "y" * 70000}, what="edit")
    assert response.status_code == 400 and "Keep this under 10,000 characters." in reason(response)


@pytest.mark.parametrize("field, value, words", [
    ("unit_cost", "NaN", "Not a valid decimal value"),
    ("unit_cost", "Infinity", "Not a valid decimal value"),
    ("unit_cost", "1e309", "The cost is at most 21,474,836.47"),
    ("quantity", str(2**31), "Receive at most 2,147,483,647 units"),
    ("medicine_id", "9" * 30, "Choose an entry from the list"),
])
def test_receiving_stock_with_numbers_out_of_range_is_a_form_error(
        admin, engine, world, field, value, words):  # noqa: F811
    """Was: a 500 for a cost of 1e309 (decimal.InvalidOperation) and a huge medicine id
    (OverflowError on SQLite); a quantity past 2**31 reached MariaDB's 32-bit INT column."""
    form = forms_on(admin.get("/admin/stock_batch/receive").text)[-1]
    data = {**form.defaults(), "medicine_id": str(world.medicine_id), "lot_number": "L9", "expiry_date": "2099-01-31",
            "quantity": "5", "unit_cost": "0.35", field: value}
    response = exchange(admin, engine, "POST", "/admin/stock_batch/receive", data=data, what="receive")
    assert response.status_code == 400 and words in reason(response)


def test_counting_more_than_a_batch_can_hold_is_a_form_error(admin, engine, world):  # noqa: F811
    url = f"/admin/stock_batch/count/{world.sample['stock_batch']}"
    form = forms_on(admin.get(url).text)[-1]
    response = exchange(admin, engine, "POST", url, what="count",
                        data={**form.defaults(), "counted_quantity": "9" * 30, "reason": "stocktake"})
    assert response.status_code == 400 and "The count is at most 2,147,483,647" in reason(response)
    assert get(admin, engine, "/admin/stock_batch/count/" + "9" * 30).status_code == 404


def test_the_stock_services_refuse_counts_the_columns_cannot_hold(engine, world):  # noqa: F811
    """The services' own check, behind the forms: a typed ValidationFailed, not a database error."""
    from datetime import date

    from portal.core.actor import Actor
    from portal.core.db import transaction
    from portal.core.errors import ValidationFailed
    from portal.services import stock

    for kwargs in ({"quantity": 2**31, "unit_cost": 1}, {"quantity": 1, "unit_cost": 10**30}):
        with pytest.raises(ValidationFailed, match="at most 2,147,483,647"), transaction(engine) as db:
            stock.receive_stock(db, medicine_id=world.medicine_id, lot_number="L1", expiry_date=date(2099, 1, 1),
                                actor=Actor(username="test"), **kwargs)
    with pytest.raises(ValidationFailed, match="at most"), transaction(engine) as db:
        stock.adjust_stock(db, batch_id=int(world.sample["stock_batch"]), counted_quantity=2**40,
                           reason="stocktake", actor=Actor(username="test"))


def test_the_booking_page_with_an_id_too_large_is_a_form_error(admin, engine, world):  # noqa: F811
    """Was: OverflowError on SQLite looking the session or patient up: a 500."""
    assert get(admin, engine, "/admin/appointment/book", clinic_session_id="9" * 30).status_code == 200
    form = forms_on(admin.get("/admin/appointment/book").text)[-1]
    for field in ("clinic_session_id", "patient_id"):
        data = {**form.defaults(), "clinic_session_id": world.sample["clinic_session"], "patient_id": world.foreign["patient"],
                field: "9" * 30}
        response = exchange(admin, engine, "POST", "/admin/appointment/book", data=data, what="book")
        assert response.status_code == 400 and "Choose an entry from the list." in reason(response)


def test_the_dashboard_department_written_in_other_digits_is_a_400(admin, engine):  # noqa: F811
    """Was: ValueError from int("²") (str.isdigit() is true for it): a 500."""
    for value in ("²", "١", "9" * 30):
        response = get(admin, engine, "/admin/", department=value)
        assert response.status_code == 400 and "Unknown department" in reason(response)
