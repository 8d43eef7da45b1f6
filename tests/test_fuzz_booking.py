"""Bad input to every patient page: never a 500, nothing written when refused.

Hypothesis (``tests.fuzzing``) sends junk to the patient pages (``portal.patient_pages.routes``):
the search, department codes, session ids, signed links, the language switch and its
``next``, cookies and ``Accept-Language``, and the fields of every form (booking, "My
booking" lookup, cancel) with a valid CSRF token and one-time token, so the junk reaches
the validation and the services behind them; then the same forms with junk tokens.

Each form is also swept with the edge values of its fields' kinds
(``tests.fuzzing.edge_cases``). Every request is checked by ``tests.fuzzing.Exchanger`` (below 500, no internal error,
redirects stay on the site, database unchanged unless accepted). The rate limits are
reset before each example (their counters are the one thing a refused request writes),
so every example reaches the checks behind them.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete

from models import ThrottleBucket
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.patient_pages.routes import view_link
from portal.services import appointments
from tests.factories import (
    make_clinic_session,
    make_department,
    make_doctor,
    make_patient,
)
from tests.fuzzing import Exchanger, edge_cases, exchange, form_data, forms_on, fuzz, junk, url_junk

#: A valid booking (see tests/test_booking_pages.py).
VALID = {"full_name": "Li Na", "phone": "138 0013 8000", "birth_date": "1985-07-23", "gender": "female",
         "national_id": "", "reason": "Chest pain"}
#: A valid 18-character resident ID (GB 11643-1999 check character X).
VALID_ID = "11010519491231002X"


@pytest.fixture
def clinic(engine):
    """A department with a doctor, a small session tomorrow, a session today that has
    ended, a patient with a booking (for lookup and cancel) and a patient with an ID
    number (so booking with another name and that ID is an identity mismatch)."""
    dept = make_department(engine, code="CARD", name="Cardiology")
    doctor = make_doctor(engine, department=dept, full_name="Wang Fang")
    tomorrow = make_clinic_session(engine, doctor=doctor, department=dept, capacity=3)
    make_clinic_session(engine, doctor=doctor, department=dept, day=clock.today() - timedelta(days=1))
    patient = make_patient(engine, full_name="Zhang Wei", phone="+8613900001111", national_id=VALID_ID)
    with transaction(engine) as db:  # through the service: a real reference
        appointment = appointments.book(db, clinic_session_id=tomorrow.id, patient_id=patient.id,
                                        actor=Actor(username="setup")).appointment
        db.expunge(appointment)
    return {"department": dept, "clinic_session": tomorrow, "patient": patient, "appointment": appointment}


def _reset_rate_limits(engine) -> None:
    with transaction(engine) as db:
        db.execute(delete(ThrottleBucket))


def _ids(clinic) -> list[str]:
    return [str(clinic["clinic_session"].id), str(clinic["clinic_session"].id + 1), "999999"]


# -- pages and links --------------------------------------------------------------------------

def test_pages_and_links_never_fail_on_bad_input(client, engine, clinic):
    sid = str(clinic["clinic_session"].id)
    token = view_link(clinic["appointment"].id).rsplit("/", 1)[1]
    paths = st.one_of(
        st.builds(lambda q: f"/?q={quote(q, safe='')}", url_junk),
        st.builds(lambda c: f"/departments/{quote(c, safe='')}", st.one_of(url_junk, st.just("CARD"))),
        st.builds(lambda i: f"/book/{quote(i, safe='')}", st.one_of(url_junk, st.sampled_from(_ids(clinic)))),
        st.builds(lambda t, kind: f"/{kind}/{quote(t, safe='')}",
                  st.one_of(url_junk, st.just(token), st.just(token[:-2]), st.just(token + "x")),
                  st.sampled_from(["booked", "booking"])),
        st.builds(lambda code, nxt: f"/language/{quote(code, safe='')}?next={quote(nxt, safe='')}",
                  st.one_of(url_junk, st.sampled_from(["zh", "en", "zh-CN"])),
                  st.one_of(url_junk, st.sampled_from(["/", "/booking", "//evil.example/", "/\\evil.example",
                                                       "https://evil.example/", "/%2F%2Fevil.example"]))),
    )
    headers = st.fixed_dictionaries({}, optional={"Accept-Language": url_junk.filter(str.isascii)})
    cookies = st.fixed_dictionaries({}, optional={"portal_csrf": url_junk.filter(str.isascii),
                                                  "portal_lang": url_junk.filter(str.isascii)})

    send = Exchanger(client, engine)

    @fuzz(40)
    @given(path=paths, headers=headers, cookies=cookies)
    def run(path, headers, cookies):
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies.set(name, value.replace('"', "").replace(";", "").replace("\\", ""))
        response = send("GET", path, headers=headers, what="patient page")
        assert response.status_code in (200, 303, 404, 409), response.status_code

    run()


# -- the booking form -------------------------------------------------------------------------

def test_booking_form_never_fails_on_bad_input(client, engine, clinic):
    sid = clinic["clinic_session"].id
    page = client.get(f"/book/{sid}")
    assert page.status_code == 200
    form = forms_on(page.text)[-1]
    baseline = {**VALID, "step": ""}
    send = Exchanger(client, engine)
    for name, data in edge_cases(form, keep=("csrf_token", "submission"), baseline=VALID):
        _reset_rate_limits(engine)
        response = send("POST", f"/book/{sid}", data=data, may_write=True, what=f"booking form, edge value in {name}")
        assert response.status_code in (303, 400, 409, 422), response.status_code

    @fuzz(30)
    @given(data=form_data(form, keep=("csrf_token", "submission"), baseline=baseline, today=clock.today()),
           step=st.one_of(st.none(), st.just("review"), junk))
    def run(data, step):
        _reset_rate_limits(engine)
        if step is not None:
            data["step"] = step
        response = send("POST", f"/book/{sid}", data=data, may_write=True, what="booking form")
        assert response.status_code in (200, 303, 400, 404, 409, 422), response.status_code

    run()


def test_booking_form_with_bad_tokens_changes_nothing(client, engine, clinic):
    sid = clinic["clinic_session"].id
    form = forms_on(client.get(f"/book/{sid}").text)[-1]
    tokens = {name: form.fields[name].value for name in ("csrf_token", "submission")}

    send = Exchanger(client, engine)

    @fuzz(20)
    @given(csrf=st.one_of(junk, st.just(tokens["csrf_token"] + "A"), st.just(tokens["submission"])),
           submission=st.one_of(junk, st.just(tokens["submission"]), st.just(tokens["csrf_token"])))
    def run(csrf, submission):
        _reset_rate_limits(engine)
        data = {**VALID, "csrf_token": csrf, "submission": submission}
        response = send("POST", f"/book/{sid}", data=data, what="booking with bad tokens")
        assert response.status_code == 403

    run()


def test_booking_with_a_stale_submission_token_books_nothing(client, engine, clinic):
    """A valid CSRF token but a one-time token for another session: the form comes back, no booking."""
    sid = clinic["clinic_session"].id
    form = forms_on(client.get(f"/book/{sid}").text)[-1]
    other = make_clinic_session(engine, doctor=None, capacity=5)
    other_form = forms_on(client.get(f"/book/{other.id}").text)[-1]
    data = {**VALID, "csrf_token": form.fields["csrf_token"].value, "submission": other_form.fields["submission"].value}
    response = exchange(client, engine, "POST", f"/book/{sid}", data=data, what="booking with another session's token")
    assert response.status_code == 400


# -- My booking: lookup and cancel -----------------------------------------------------------

def test_lookup_form_never_fails_on_bad_input(client, engine, clinic):
    form = forms_on(client.get("/booking").text)[-1]
    baseline = {"reference": clinic["appointment"].reference, "phone": "139 0000 1111"}
    send = Exchanger(client, engine)
    for name, data in edge_cases(form, keep=("csrf_token",), baseline=baseline):
        _reset_rate_limits(engine)
        assert send("POST", "/booking", data=data, what=f"lookup, edge value in {name}").status_code in (400, 422)

    @fuzz(25)
    @given(data=form_data(form, keep=("csrf_token",), baseline=baseline))
    def run(data):
        _reset_rate_limits(engine)
        response = send("POST", "/booking", data=data, what="lookup")
        assert response.status_code in (303, 400, 403, 404, 422), response.status_code

    run()


def test_cancel_form_never_fails_on_bad_input(client, engine, clinic):
    link = view_link(clinic["appointment"].id)
    form = forms_on(client.get(link).text)[-1]
    assert form.action.endswith("/cancel")
    send = Exchanger(client, engine)
    for name, data in edge_cases(form, keep=("csrf_token",), baseline={"reason": "Feeling better"}):
        response = send("POST", f"{link}/cancel", data=data, may_write=True, what=f"cancel, edge value in {name}")
        assert response.status_code in (303, 400, 409, 422)

    @fuzz(25)
    @given(data=form_data(form, keep=("csrf_token",), baseline={"reason": "Feeling better"}),
           token=st.one_of(st.just(link.rsplit("/", 1)[1]), url_junk))
    def run(data, token):
        url = f"/booking/{quote(token, safe='')}/cancel"  # "." and ".." leave /booking/x/cancel (404, 405)
        response = send("POST", url, data=data, may_write=True, what="cancel")
        assert response.status_code in (303, 400, 403, 404, 405, 409, 422), response.status_code

    run()


def test_a_form_field_over_64_kib_is_a_400_not_the_expired_form_page(client, engine, clinic):
    """Was: an unreadable body was read as an empty form, so the answer was the 403
    "This form has expired" page, whatever the reason."""
    form = forms_on(client.get("/booking").text)[-1]
    data = {**form.defaults(), "reference": "x" * 70000, "phone": "139 0000 1111"}
    response = exchange(client, engine, "POST", "/booking", data=data, what="lookup with a huge field")
    assert response.status_code == 400 and "Some details could not be accepted" in response.text
    response = exchange(client, engine, "POST", "/booking", files={"reference": ("r.txt", b"K7MX9-3QD2A")},
                        data={"csrf_token": form.fields["csrf_token"].value}, what="lookup with a file")
    assert response.status_code == 400
