"""The HTTP steps of the two race scenarios, as a patient's browser and a pharmacist's do them.

Used by the load generator (``bench/locust_races.py``, through Locust's HTTP client) and by
the tests (``tests/test_http_races.py``, through ``httpx``), so both drive the real pages
the same way. A *client* here is any object with ``get(path, headers=...)`` and
``post(path, data=..., headers=...)`` that keeps cookies, does NOT follow redirects, and
returns responses with ``status_code``, ``headers`` and ``text``.

Booking (``portal/patient_pages/routes.py``): ``GET /book/{id}`` gives the form with two hidden
tokens (``csrf_token``, checked against the ``portal_csrf`` cookie, and the one-time
``submission`` token); ``POST /book/{id}`` answers 303 to ``/booked/<signed id>`` when it
booked, or 409 with the "just filled up" page when the last place went first.

Dispensing (``views/_actions.py``, ``views/_csrf.py``): after ``POST /admin/login``,
``GET /admin/prescription/action/dispense?pks=<id>`` is the confirmation page carrying the
session's CSRF token; ``POST`` of the same URL dispenses and answers 303 to ``next`` with
the outcome as a flash message (kept in the signed session cookie until a page shows it).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

#: The patient pages are asked for in English, so outcomes are recognised by their text.
ENGLISH = {"Accept-Language": "en"}
#: Heading of the page a patient gets when the last place went to someone else.
JUST_FILLED = "Sorry, this session has just filled up"
DISPENSE_PATH = "/admin/prescription/action/dispense"


class Client(Protocol):
    """What the flows need of an HTTP client (see the module docstring)."""

    def get(self, path: str, **kwargs: Any) -> Any: ...

    def post(self, path: str, **kwargs: Any) -> Any: ...


class FlowError(Exception):
    """A page did not look as the flow expected (the message says what came back)."""


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the first form on ``page``, by name (values unescaped)."""
    fields: dict[str, str] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page):
        fields.setdefault(name, html.unescape(value))
    return fields


def _heading(page: str) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split()) if match else ""


# -- booking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedPatient:
    """Form values of one simulated patient (valid for ``portal.patient_pages.forms.BookingForm``).

    Attributes:
        full_name (str): letters only (the form refuses digits in names).
        phone (str): an 11-digit mainland mobile number, unique per run and patient.
        birth_date (date): between 1940 and 2009.
        gender (str): ``female`` or ``male``.
    """

    full_name: str
    phone: str
    birth_date: date
    gender: str

    def form(self) -> dict[str, str]:
        """The booking form's fields (no national ID, no reason)."""
        return {"full_name": self.full_name, "phone": self.phone, "birth_date": self.birth_date.isoformat(),
                "gender": self.gender, "national_id": "", "reason": ""}


def simulated_patient(run: int, index: int) -> SimulatedPatient:
    """The ``index``-th patient of run number ``run`` (0-9999): phone ``139`` + run + index.

    Args:
        run (int): a number drawn once per run (0-9999), so reruns register new people.
        index (int): the patient's number in the run (0-9999).

    Returns:
        SimulatedPatient: distinct phone numbers for distinct ``(run, index)``.
    """
    letters = "abcdefghijklmnopqrstuvwxyz"
    name = "".join(letters[(index // 26**k) % 26] for k in range(3)).capitalize()
    return SimulatedPatient(
        full_name=f"Rush {name}", phone=f"139{run % 10000:04d}{index % 10000:04d}",
        birth_date=date(1940, 1, 1) + timedelta(days=(index * 97) % 25000),
        gender="female" if index % 2 else "male",
    )


def patient_address(index: int) -> str:
    """A client address for patient ``index`` (``10.x.y.z``), sent as ``X-Forwarded-For``
    when the server trusts the load generator as its proxy (``FORWARDED_ALLOW_IPS``), so
    each simulated patient has an address of its own, as real ones do."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


@dataclass(frozen=True)
class BookingOutcome:
    """What a booking submission got.

    Attributes:
        kind (str): ``booked`` (303 to the confirmation), ``just_filled`` (409 "just filled
            up" page), or ``other`` (anything else: see ``status`` and ``detail``).
        status (int): HTTP status of the POST.
        location (str): the redirect target of a booking (signed confirmation link), else "".
        detail (str): the page heading of an ``other`` answer.
    """

    kind: str
    status: int
    location: str = ""
    detail: str = ""

    @property
    def label(self) -> str:
        """How the outcome is counted: ``booked``, ``just_filled`` or ``other <status>: <heading>``."""
        return f"other {self.status}: {self.detail[:100]}" if self.kind == "other" else self.kind


def open_booking_form(client: Client, clinic_session_id: int) -> dict[str, str]:
    """GET the booking form of a session and return its hidden tokens.

    Raises:
        FlowError: not a 200 page with ``csrf_token`` and ``submission`` fields.
    """
    response = client.get(f"/book/{clinic_session_id}", headers=ENGLISH)
    fields = hidden_fields(response.text) if response.status_code == 200 else {}
    if "csrf_token" not in fields or "submission" not in fields:
        raise FlowError(f"booking form: {response.status_code} {_heading(response.text)!r}")
    return {"csrf_token": fields["csrf_token"], "submission": fields["submission"]}


def submit_booking(client: Client, clinic_session_id: int, tokens: dict[str, str], patient: SimulatedPatient) -> BookingOutcome:
    """POST the booking form with the tokens of :func:`open_booking_form`; classify the answer."""
    response = client.post(f"/book/{clinic_session_id}", data={**tokens, **patient.form()}, headers=ENGLISH)
    status = response.status_code
    location = response.headers.get("location", "") or ""
    if status == 303 and location.startswith("/booked/"):
        return BookingOutcome("booked", status, location=location)
    if status == 409 and JUST_FILLED in response.text:
        return BookingOutcome("just_filled", status)
    return BookingOutcome("other", status, detail=_heading(response.text) or response.text[:120])


def booking_reference(client: Client, location: str) -> str:
    """GET the confirmation page a booking redirected to and return its booking reference.

    Raises:
        FlowError: the page is not a 200 confirmation with a reference.
    """
    response = client.get(location, headers=ENGLISH)
    match = re.search(r'<p class="reference"[^>]*>([^<]+)</p>', response.text)
    if response.status_code != 200 or not match:
        raise FlowError(f"confirmation: {response.status_code} {_heading(response.text)!r}")
    return match.group(1).strip()


# -- dispensing ------------------------------------------------------------------------------


def log_in(client: Client, username: str, password: str) -> None:
    """Log in to the admin with the login form's CSRF token (the session cookie stays in the client).

    Raises:
        FlowError: the login was refused (no 302).
    """
    page = client.get("/admin/login")  # the login form's pre-login CSRF token
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if page.status_code != 200 or not match:
        raise FlowError(f"login page: {page.status_code}")
    response = client.post("/admin/login", data={"username": username, "password": password,
                                                 "csrf_token": html.unescape(match.group(1))})
    if response.status_code != 302:
        raise FlowError(f"login of {username}: {response.status_code}")


def open_dispense(client: Client, prescription_id: int) -> str:
    """GET the dispense confirmation page of one prescription; return its CSRF token.

    Raises:
        FlowError: not a 200 page with a token.
    """
    response = client.get(f"{DISPENSE_PATH}?pks={prescription_id}")
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    if response.status_code != 200 or not match:
        raise FlowError(f"dispense confirmation: {response.status_code}")
    return html.unescape(match.group(1))


def submit_dispense(client: Client, prescription_id: int, token: str) -> tuple[int, str]:
    """POST the dispense confirmation; return (status, redirect target).

    The action answers 303 to the prescription's detail page (the ``next`` field), where
    :func:`flash_messages` reads the outcome.
    """
    response = client.post(DISPENSE_PATH, data={
        "csrf_token": token, "pks": str(prescription_id),
        "next": f"/admin/prescription/details/{prescription_id}",
    })
    return response.status_code, response.headers.get("location", "") or ""


def flash_messages(client: Client, location: str) -> list[tuple[str, str]]:
    """GET the page an action redirected to; return its flash messages as (category, text).

    Categories are Bootstrap's: ``success``, ``warning``, ``danger``.
    """
    response = client.get(location)
    if response.status_code != 200:
        raise FlowError(f"page after the action: {response.status_code}")
    found = re.findall(r'text-bg-(\w+)".*?<div class="toast-body"[^>]*>(.*?)</div>', response.text, re.S)
    return [(category, html.unescape(" ".join(text.split()))) for category, text in found]
