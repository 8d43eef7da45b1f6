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
    ("/admin/staff-user/list", "role", "root"),
    ("/admin/stock-batch/list", "status", "all"),
    ("/admin/stock-movement/list", "kind", "gift"),
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


@pytest.mark.parametrize("value, op", [("0001-01-01", "greater_than"), ("9999-12-31", "equals"),
                                       ("0001-01-01T00:00", "less_than")])
def test_a_registered_date_at_the_end_of_the_calendar_is_a_400_not_a_500(admin, engine, value, op):  # noqa: F811
    """Was: OverflowError moving the local date to UTC (or a day on) in LocalDateTimeFilter."""
    response = get(admin, engine, "/admin/patient/list", created_at=value, created_at_op=op)
    assert response.status_code == 400
    assert "created_at must be a date" in reason(response)


def test_a_comparison_filter_takes_only_its_operations_and_typed_values(admin, engine):  # noqa: F811
    cases = [
        ({"session_date": "2026-11-20", "session_date_op": "contains"}, "session_date_op must be one of"),
        ({"session_date": "2026-11-20"}, "session_date needs session_date_op"),
        ({"session_date": "2026-02-30", "session_date_op": "equals"}, "session_date must be a date"),
    ]
    for params, words in cases:
        response = get(admin, engine, "/admin/schedule/list", **params)
        assert response.status_code == 400 and words in reason(response), params
    assert get(admin, engine, "/admin/schedule/list", session_date="2026-11-20",
               session_date_op="equals").status_code == 200
    assert get(admin, engine, "/admin/medicine/list", category="x" * 101, category_op="contains").status_code == 400


def test_preset_and_yes_no_filters_take_only_their_choices(admin, engine):  # noqa: F811
    for url, param, good, bad in [
        ("/admin/medicine/list", "stock", "below_reorder", "above"),
        ("/admin/medicine/list", "is_active", "true", "maybe"),
        ("/admin/stock-batch/list", "expiry", "soon", "later"),
        ("/admin/schedule/list", "held", "now", "yesterday"),
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
    assert get(admin, engine, "/admin/stock-batch/action/count", pks="9" * 30).status_code == 400


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
