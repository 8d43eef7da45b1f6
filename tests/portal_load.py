"""A mixed day at the portal over HTTP, for the kill and soak tests: a world and a load.

:func:`build_world` fills a migrated database with what the load needs, every row written
the way the portal writes it (audited admin creates, stock received through the stock
service), optionally on top of the demo hospital. :class:`Load` then drives a live server
(:class:`tests.live_server.LiveServer`) from threads with ``httpx``:

* patients browse the department list, timetables and booking forms, book places (the
  real forms: CSRF cookie, one-time submission token), look a booking up and cancel;
* the front desk confirms bookings (admin workflow action: confirmation page + POST);
* the pharmacist dispenses prescriptions (whole or partial) and receives deliveries;
* the administrator edits clinic sessions (capacity) and patients (address) through the
  admin's edit forms.

Every answer is tallied per task and status; any 5xx is kept with its page. A request
cut by a dying worker (connection closed or refused) is counted apart, not retried.
Patients come from many loopback addresses (127.x.y.z), so the per-address booking rate
limit is met as it would be by many patients, without changing it.
"""

from __future__ import annotations

import html
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as dtime
from html.parser import HTMLParser

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from models import (
    ClinicSession,
    Department,
    Doctor,
    DoctorDepartment,
    Gender,
    Medicine,
    Patient,
    Prescription,
    PrescriptionItem,
    Role,
    StaffUser,
    Supplier,
)
from portal.core import clock
from portal.core.actor import Actor, current_actor
from portal.core.db import run_in_transaction, session_factory, transaction
from portal.core.passwords import hash_password
from portal.core.settings import get_settings
from portal.patient_pages import routes as booking_routes
from portal.services import change_audit, stock
from portal.web import tokens
from tests.admin_html import csrf_token_of

PASSWORD = "load-test-password-1"
SETUP = Actor(username="load-setup")
NAMES = ["Li Na", "Wang Wei", "Zhang Min", "Liu Yang", "Chen Jing", "Yang Fan", "Zhao Lei", "Huang Li"]


# -- the world ------------------------------------------------------------------------------


@dataclass
class World:
    """Ids and names the load works on.

    Attributes:
        clinic_session_ids (list[int]): bookable clinic sessions made for the load.
        department_codes (list[str]): departments with bookable sessions (for browsing).
        prescription_ids (list[int]): issued prescriptions to dispense.
        medicine_ids (list[int]): medicines the prescriptions need (and deliveries bring).
        supplier_id (int): the supplier of deliveries.
        patient_ids (list[int]): patients the administrator edits.
        staff (dict[str, str]): role -> username (password :data:`PASSWORD`).
    """

    clinic_session_ids: list[int]
    department_codes: list[str]
    prescription_ids: list[int]
    medicine_ids: list[int]
    supplier_id: int
    patient_ids: list[int]
    staff: dict[str, str]


def build_world(engine: Engine, *, sessions: int, capacity: int, prescriptions: int, seed: int = 7,
                demo: bool = False) -> World:
    """Fill ``engine``'s database (migrated, empty) with the load's world.

    Args:
        engine (Engine): the database.
        sessions (int): clinic sessions to book into, over the next 7 days.
        capacity (int): places per session.
        prescriptions (int): issued prescriptions of 1-2 lines (5-40 units a line) over
            four medicines, each stocked with about a third of what is prescribed, so
            dispenses also meet shortages.
        seed (int): random seed.
        demo (bool): load the demo hospital first (its staff get :data:`PASSWORD`).

    Returns:
        World: what the load needs.
    """
    rng = random.Random(seed)
    if demo:
        from portal.ops.seed.demo import seed_demo

        seed_demo(engine, demo_password=PASSWORD)
    today = clock.today()
    change_audit.install()
    token = current_actor.set(SETUP)
    try:
        with session_factory(engine, audit_changes=True).begin() as db:  # audited like the admin's
            staff = {}
            for role in (Role.admin, Role.receptionist, Role.pharmacist):
                user = StaffUser(username=f"load-{role.value}", full_name=f"Load {role.value}", role=role,
                                 password_hash=hash_password(PASSWORD))
                db.add(user)
                staff[role.value] = user.username
            department = Department(code="LOAD", name="Load Test Clinic", location="Building L")
            doctors = [Doctor(full_name=f"Load Doctor {i}", title="Attending Physician", specialty="General Medicine",
                              phone=f"+8621555{i:04d}")
                       for i in range(4)]
            db.add_all([department, *doctors])
            db.flush()
            db.add_all([DoctorDepartment(doctor_id=d.id, department_id=department.id) for d in doctors])
            clinic_sessions = []
            for i in range(sessions):  # per doctor: mornings then afternoons of the next 7 days
                doctor, j = doctors[i % len(doctors)], i // len(doctors)
                day = today + timedelta(days=1 + j % 7)
                start = dtime(8, j // 14) if (j // 7) % 2 == 0 else dtime(13, 30 + j // 14)
                clinic_sessions.append(ClinicSession(
                    doctor_id=doctor.id, department_id=department.id, session_date=day, start_time=start,
                    end_time=dtime(start.hour + 3, start.minute), capacity=capacity, fee=2000, slot_minutes=5,
                ))
            medicines = [Medicine(name=f"Loadamol {i}", form="Tablet", strength=f"{100 * (i + 1)} mg",
                                  unit="tablet", unit_price=50) for i in range(4)]
            supplier = Supplier(name="Load Supplies Ltd")
            patients = [Patient(full_name=rng.choice(NAMES), birth_date=date(1950, 1, 1) + timedelta(days=rng.randrange(20000)),
                                phone=f"+86137{rng.randrange(10**8):08d}", gender=Gender.female) for _ in range(20)]
            db.add_all([*clinic_sessions, *medicines, supplier, *patients])
            db.flush()
            owed = Counter()
            rx_rows = []
            for n in range(prescriptions):
                rx = Prescription(number=f"RX-LOAD-{n:06d}", patient_id=rng.choice(patients).id,
                                  doctor_id=rng.choice(doctors).id)
                db.add(rx)
                rx_rows.append(rx)
            db.flush()
            for rx in rx_rows:
                for medicine in rng.sample(medicines, rng.choice((1, 1, 2))):
                    quantity = rng.randrange(5, 41)
                    owed[medicine.id] += quantity
                    db.add(PrescriptionItem(prescription_id=rx.id, medicine_id=medicine.id, quantity=quantity,
                                                 dosage="1 tablet twice daily"))
            world = World(
                clinic_session_ids=[s.id for s in clinic_sessions], department_codes=["LOAD"],
                prescription_ids=[rx.id for rx in rx_rows], medicine_ids=[m.id for m in medicines],
                supplier_id=supplier.id, patient_ids=[p.id for p in patients], staff=staff,
            )
    finally:
        current_actor.reset(token)
    for medicine_id in world.medicine_ids:  # a third of what is owed, in three lots (FEFO)
        for lot in range(3):
            run_in_transaction(
                stock.receive_stock, engine=engine, medicine_id=medicine_id, lot_number=f"L{medicine_id}-{lot}",
                expiry_date=today + timedelta(days=200 + 100 * lot), quantity=max(owed[medicine_id] // 9, 1),
                unit_cost=30, supplier_id=world.supplier_id, actor=SETUP,
            )
    if demo:
        with transaction(engine, write=False) as db:
            world.department_codes += list(db.scalars(select(Department.code).where(Department.code != "LOAD")))
    return world


# -- HTML forms -------------------------------------------------------------------------------


class _FormParser(HTMLParser):
    """The fields of the page's first ``<form method="post">`` other than the top bar's
    logout form (values as a browser would send them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._in_form = self._done = False
        self._select: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if (tag == "form" and not self._done and a.get("method", "").lower() == "post"
                and not a.get("action", "").endswith("/logout")):
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields[name] = a.get("value", "on") or "on"
            elif kind not in ("submit", "button", "file", "image", "reset"):
                self.fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select, self._select_first = name, None
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.fields[self._select] = value
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if not self._in_form:
            return
        if tag == "select" and self._select:
            self.fields.setdefault(self._select, self._select_first or "")
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields[self._textarea] = "".join(self._text).lstrip("\n")
            self._textarea = None
        elif tag == "form":
            self._in_form, self._done = False, True

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_fields(page: str) -> dict[str, str]:
    """The fields of the first POST form on ``page`` (not the logout form), with their current values."""
    parser = _FormParser()
    parser.feed(page)
    return parser.fields


def _form_error(page: str) -> str:
    """The error an admin form shows (its alert, else its first field error), as text."""
    match = (re.search(r'class="alert[^"]*"[^>]*>(.*?)</div>', page, re.S)
             or re.search(r'class="invalid-feedback[^"]*"[^>]*>(.*?)</div>', page, re.S))
    if not match:
        return "(no message)"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())[:160]


def _booking_token(location: str) -> int | None:
    match = re.search(r"/booked/([^/?#]+)", location)
    if not match:
        return None
    value = tokens.unsign(match.group(1), purpose=booking_routes.VIEW_PURPOSE, max_age=booking_routes.VIEW_MAX_AGE)
    return value if isinstance(value, int) else None


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the load saw (shared by its threads; change it under ``lock``).

    Attributes:
        answers (Counter): (task, status code) -> answers.
        cut (Counter): task -> requests cut by a dying worker (connection closed, reset or
            refused), counted once per task attempt.
        server_errors (list[str]): every 5xx: method, path, status, start of the page.
        booked (dict[int, str]): appointment id -> its manage link, for every booking the
            server acknowledged (303 to the confirmation).
        cancelled (set[int]): appointments whose cancellation the server acknowledged.
        edits (Counter): entity -> admin edits the server acknowledged (302).
        refusals (Counter): (task, message) -> admin forms answered 400, by the message shown.
    """

    answers: Counter = field(default_factory=Counter)
    cut: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    booked: dict[int, str] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    edits: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        """Answers received, all tasks and statuses."""
        return sum(self.answers.values())

    def by_task(self) -> dict[str, dict[int, int]]:
        """task -> status -> answers."""
        out: dict[str, dict[int, int]] = {}
        for (task, status), n in sorted(self.answers.items()):
            out.setdefault(task, {})[status] = n
        return out

    def summary(self) -> str:
        """One paragraph: answers per task and status, cuts, 5xx."""
        parts = [f"{task}: " + ", ".join(f"{s}x{n}" for s, n in statuses.items())
                 for task, statuses in self.by_task().items()]
        return (f"{self.requests} answers ({'; '.join(parts)}); {sum(self.cut.values())} cut "
                f"{dict(self.cut)}; {len(self.booked)} bookings and {len(self.cancelled)} cancellations "
                f"acknowledged; edits {dict(self.edits)}; admin forms refused {dict(self.refusals)}; "
                f"{len(self.server_errors)} 5xx")


class _Cut(Exception):
    """The request was cut by a dying worker."""


class Load:
    """Threads that act out patients and staff against ``base_url`` until stopped.

    Args:
        base_url (str): the live server.
        world (World): from :func:`build_world`.
        patients (int): patient threads (browse, book, look up, cancel).
        staff (int): staff threads (confirm, dispense, receive, edit), at least 1.
        seed (int): random seed (thread ``i`` uses ``seed + i``).
        think_seconds (float): mean pause of each thread between two tasks (exponentially
            distributed), a person's reading and typing time; 0 runs flat out.
    """

    #: Patient tasks and their weights.
    PATIENT_TASKS = {"browse": 5, "book": 6, "lookup": 1, "cancel": 2}
    #: Staff tasks and their weights.
    STAFF_TASKS = {"confirm": 3, "dispense": 5, "receive": 1, "edit_clinic_session": 1, "edit_patient": 1, "admin_list": 2}

    def __init__(self, base_url: str, world: World, *, patients: int = 4, staff: int = 2, seed: int = 1,
                 think_seconds: float = 0.0) -> None:
        self.base_url = base_url
        self.think_seconds = think_seconds
        self.world = world
        self.tally = Tally()
        self.stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(self._patient, seed + i), name=f"patient-{i}", daemon=True)
            for i in range(patients)
        ] + [
            threading.Thread(target=self._run, args=(self._staff, seed + patients + i), name=f"staff-{i}", daemon=True)
            for i in range(staff)
        ]
        self._answered = threading.Condition(self.tally.lock)
        self._address_lock = threading.Lock()
        self._next_address = 0
        self._edits = 0
        self.failures: list[BaseException] = []

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Start every thread."""
        for thread in self._threads:
            thread.start()

    def finish(self, timeout: float = 120.0) -> Tally:
        """Stop the threads (each ends its current task) and return the tally.

        Raises:
            AssertionError: a thread failed with an unexpected exception (a bug of the
                load or an answer it could not understand), or did not stop in time.
        """
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} did not stop within {timeout:.0f} s"
        assert not self.failures, f"load threads failed: {self.failures!r}"
        return self.tally

    def wait_for_answers(self, count: int, timeout: float) -> bool:
        """Block until the load has received ``count`` answers in all (or was stopped).

        Returns:
            bool: True when the count was reached, False on timeout or stop.
        """
        with self._answered:
            self._answered.wait_for(lambda: self.tally.requests >= count or self.stop.is_set(), timeout)
            return self.tally.requests >= count

    def run_for(self, seconds: float, progress: Callable[[str], None] | None = None, every: float = 30.0) -> Tally:
        """Run the load for ``seconds`` (a duration, not a synchronisation), reporting the
        tally every ``every`` seconds through ``progress``; return the tally."""
        self.start()
        started = time.monotonic()
        deadline = started + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stop.wait(min(every, remaining)):
                break
            if progress:
                tally = self.tally
                progress(f"  {time.monotonic() - started:5.0f} s: {tally.requests} answers, "
                         f"{len(tally.booked)} bookings, {len(tally.server_errors)} 5xx")
        return self.finish()

    def _think(self, rng: random.Random) -> None:
        """Pause like a person between two tasks (``think_seconds`` on average); return early
        when the load is stopped."""
        if self.think_seconds > 0:
            self.stop.wait(rng.expovariate(1 / self.think_seconds))

    def _run(self, actor: Callable[[random.Random], None], seed: int) -> None:
        try:
            actor(random.Random(seed))
        except BaseException as exc:  # reported by finish()
            self.failures.append(exc)
            self.stop.set()

    # -- HTTP ---------------------------------------------------------------------------

    def _address(self) -> str:
        """A fresh loopback address (127.1.0.1, 127.1.0.2, ...): a new patient's own network."""
        with self._address_lock:
            self._next_address += 1
            n = self._next_address
        return f"127.{1 + n // 65000}.{(n % 65000) // 250}.{1 + n % 250}"

    def _client(self, address: str | None = None) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address) if address else None
        return httpx.Client(base_url=self.base_url, timeout=90, follow_redirects=False, transport=transport)

    def _request(self, client: httpx.Client, task: str, method: str, path: str, **kw) -> httpx.Response:
        try:
            response = client.request(method, path, **kw)
        except httpx.TransportError as exc:  # the worker died with the request, or before it
            with self.tally.lock:
                self.tally.cut[task] += 1
            raise _Cut(str(exc)) from exc
        with self._answered:
            self.tally.answers[(task, response.status_code)] += 1
            if response.status_code >= 500:
                text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())[:300]
                self.tally.server_errors.append(f"{method} {path} -> {response.status_code}: {text}")
            elif response.status_code == 400 and method == "POST" and path.startswith("/admin/"):
                self.tally.refusals[(task, _form_error(response.text))] += 1
            self._answered.notify_all()
        return response

    # -- patients -------------------------------------------------------------------------

    def _patient(self, rng: random.Random) -> None:
        client = self._client(self._address())
        bookings_here = 0
        mine: list[tuple[int, str]] = []  # (appointment id, manage link) booked by this thread
        tasks, weights = zip(*self.PATIENT_TASKS.items())
        try:
            while not self.stop.is_set():
                task = rng.choices(tasks, weights)[0]
                if task == "book" and bookings_here >= get_settings().booking_rate_limit:
                    client.close()  # the next patient, from another address
                    client, bookings_here = self._client(self._address()), 0
                try:
                    if task == "browse":
                        self._browse(client, rng)
                    elif task == "book":
                        bookings_here += 1
                        booked = self._book(client, rng)
                        if booked:
                            mine.append(booked)
                    elif task == "lookup":
                        self._request(client, "lookup", "GET", "/booking")
                    elif task == "cancel" and mine:
                        self._cancel(client, rng, mine.pop(rng.randrange(len(mine))))
                except _Cut:
                    continue
                self._think(rng)
        finally:
            client.close()

    def _browse(self, client: httpx.Client, rng: random.Random) -> None:
        self._request(client, "browse", "GET", "/")
        self._request(client, "browse", "GET", f"/departments/{rng.choice(self.world.department_codes)}")
        self._request(client, "browse", "GET", f"/book/{rng.choice(self.world.clinic_session_ids)}")

    def _book(self, client: httpx.Client, rng: random.Random) -> tuple[int, str] | None:
        clinic_session_id = rng.choice(self.world.clinic_session_ids)
        page = self._request(client, "book", "GET", f"/book/{clinic_session_id}")
        if page.status_code != 200:
            return None  # full or closed: the page offers other sessions
        data = form_fields(page.text)
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(20000))
        data.update(full_name=rng.choice(NAMES), phone=f"139{rng.randrange(10**8):08d}",
                    birth_date=birth.isoformat(), gender=rng.choice(("female", "male")), reason="Check-up")
        response = self._request(client, "book", "POST", f"/book/{clinic_session_id}", data=data)
        if response.status_code != 303:
            return None
        appointment_id = _booking_token(response.headers["location"])
        assert appointment_id is not None, response.headers["location"]
        link = booking_routes.view_link(appointment_id)
        with self.tally.lock:
            self.tally.booked[appointment_id] = link
        return appointment_id, link

    def _cancel(self, client: httpx.Client, rng: random.Random, booking: tuple[int, str]) -> None:
        appointment_id, link = booking
        page = self._request(client, "cancel", "GET", link)
        if page.status_code != 200 or "/cancel" not in page.text:
            return
        data = form_fields(page.text)
        data["reason"] = rng.choice(("", "Feeling better", "Cannot come"))
        response = self._request(client, "cancel", "POST", f"{link}/cancel", data=data)
        if response.status_code == 303:
            with self.tally.lock:
                self.tally.cancelled.add(appointment_id)

    # -- staff ----------------------------------------------------------------------------

    def _login(self, role: str) -> httpx.Client:
        client = self._client()
        while not self.stop.is_set():
            try:
                page = self._request(client, "login", "GET", "/admin/login")
                token = csrf_token_of(page.text)  # the login form's pre-login CSRF token
                response = self._request(client, "login", "POST", "/admin/login",
                                         data={"username": self.world.staff[role], "password": PASSWORD,
                                               "csrf_token": token})
            except _Cut:
                continue
            assert response.status_code == 302, f"login as {role}: {response.status_code} {response.text[:300]}"
            return client
        return client

    def _staff(self, rng: random.Random) -> None:
        clients = {role: self._login(role) for role in ("admin", "receptionist", "pharmacist")}
        tasks, weights = zip(*self.STAFF_TASKS.items())
        try:
            while not self.stop.is_set():
                task = rng.choices(tasks, weights)[0]
                try:
                    if task == "confirm":
                        self._confirm(clients["receptionist"], rng)
                    elif task == "dispense":
                        self._dispense(clients["pharmacist"], rng)
                    elif task == "receive":
                        self._receive(clients["pharmacist"], rng)
                    elif task == "edit_clinic_session":
                        self._edit(clients["admin"], rng, "clinic_session", rng.choice(self.world.clinic_session_ids),
                                   lambda f: {"capacity": str(int(f["capacity"]) + 1)})
                    elif task == "edit_patient":
                        self._edit(clients["admin"], rng, "patient", rng.choice(self.world.patient_ids),
                                   lambda f: {"address": f"Room {self._edit_number()}, Load Street"})
                    elif task == "admin_list":
                        identity = rng.choice(("appointment", "prescription", "stock_batch", "audit_event"))
                        self._request(clients["admin"], "admin_list", "GET", f"/admin/{identity}/list")
                except _Cut:
                    continue
                self._think(rng)
        finally:
            for client in clients.values():
                client.close()

    def _edit_number(self) -> int:
        with self._address_lock:
            self._edits += 1
            return self._edits

    def _action(self, client: httpx.Client, task: str, identity: str, slug: str, pk: int, **fields) -> None:
        url = f"/admin/{identity}/action/{slug}"
        page = self._request(client, task, "GET", url, params={"pks": str(pk)})
        if page.status_code != 200:
            return
        data = form_fields(page.text)
        data.update(pks=str(pk), next=f"/admin/{identity}/list", **fields)
        self._request(client, task, "POST", url, data=data)

    def _confirm(self, client: httpx.Client, rng: random.Random) -> None:
        with self.tally.lock:
            booked = list(self.tally.booked)
        if booked:
            self._action(client, "confirm", "appointment", "confirm", rng.choice(booked))

    def _dispense(self, client: httpx.Client, rng: random.Random) -> None:
        slug = "dispense-partial" if rng.random() < 0.3 else "dispense"
        self._action(client, "dispense", "prescription", slug, rng.choice(self.world.prescription_ids))

    def _receive(self, client: httpx.Client, rng: random.Random) -> None:
        page = self._request(client, "receive", "GET", "/admin/stock_batch/receive")
        if page.status_code != 200:
            return
        data = form_fields(page.text)
        today = clock.today()
        data.update(medicine_id=str(rng.choice(self.world.medicine_ids)), lot_number=f"D{rng.randrange(10**9)}",
                    expiry_date=(today + timedelta(days=rng.randrange(60, 700))).isoformat(),
                    quantity=str(rng.randrange(20, 200)), unit_cost="0.30", supplier_id=str(self.world.supplier_id),
                    note="load delivery")
        self._request(client, "receive", "POST", "/admin/stock_batch/receive", data=data)

    def _edit(self, client: httpx.Client, rng: random.Random, identity: str, pk: int,
              change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        page = self._request(client, f"edit_{identity}", "GET", f"/admin/{identity}/edit/{pk}")
        if page.status_code != 200:
            return
        data = form_fields(page.text)
        data.update(change(data))
        data["save"] = "Save"
        response = self._request(client, f"edit_{identity}", "POST", f"/admin/{identity}/edit/{pk}", data=data)
        if response.status_code == 302:
            with self.tally.lock:
                self.tally.edits[identity] += 1
