"""The booking rush and the dispensing race through HTTP against a real server process.

The benchmark scenarios 2 and 4 (``bench/booking_rush.py``, ``bench/dispensing_race.py``)
at a small size: ``python main.py --port P --no-demo`` serves the test database, one real
thread per simulated patient or pharmacist drives the pages (``bench/race_flows.py``)
with its own ``httpx`` client, and a barrier releases all the submissions together once
every form is open. The checks of the benchmark then look at what the clients saw and at
the database. Concurrency inside the server is real (its thread pool, the database's row
locks); on SQLite writers queue on the database lock, on MariaDB they race on row locks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.race_flows import (
    booking_reference,
    flash_messages,
    log_in,
    open_booking_form,
    open_dispense,
    patient_address,
    simulated_patient,
    submit_booking,
    submit_dispense,
)
from bench.scenarios import booking_rush, dispensing_race
from tests.factories import (
    PASSWORD,
    assert_ledger_consistent,
    make_department,
    make_doctor,
    make_patient,
)

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(db_url, tmp_path_factory) -> Iterator[str]:
    """``python main.py --port P --no-demo`` on the test database, trusting the clients'
    ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``, as behind a proxy) so each simulated patient
    has an address of its own; its output goes to a log file."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "DATABASE_URL": db_url, "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "main.py", "--port", str(port), "--no-demo"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server exited: {log_path.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/_ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server did not answer: {log_path.read_text()[-2000:]}"
            time.sleep(0.1)  # polling interval while the server starts, not a synchronisation
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_text = log_path.read_text()
        assert "Traceback" not in log_text, log_text[-4000:]


def race(count: int, prepare: Callable[[int, httpx.Client], object],
         act: Callable[[int, httpx.Client, object], object], base_url: str,
         headers: Callable[[int], dict[str, str]] = lambda i: {}) -> list:
    """Run ``count`` clients in threads: each prepares (opens its form), waits at a barrier
    until all have, then acts; returns each act's result or exception, in order. Client
    ``i`` sends ``headers(i)`` with every request."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def one(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60, headers=headers(i)) as client:
            try:
                state = prepare(i, client)
            except Exception as exc:  # noqa: BLE001 - reported as the outcome
                barrier.abort()
                results[i] = exc
                return
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError as exc:
                results[i] = results[i] or exc
                return
            try:
                results[i] = act(i, client, state)
            except Exception as exc:  # noqa: BLE001 - reported as the outcome
                results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return results


def test_100_patients_race_for_the_last_10_places(server_url, engine):
    dept = make_department(engine)
    doctor = make_doctor(engine, department=dept)
    rush = booking_rush.prepare(engine, places=10, patients=100, booked_before=3, doctor_id=doctor.id,
                                department_id=dept.id)

    def book(i, client, tokens):
        outcome = submit_booking(client, rush.clinic_session_id, tokens, simulated_patient(rush.run, i))
        reference = booking_reference(client, outcome.location) if outcome.kind == "booked" else None
        return outcome, reference

    results = race(100, lambda i, client: open_booking_form(client, rush.clinic_session_id), book, server_url,
                   headers=lambda i: {"X-Forwarded-For": patient_address(i)})

    outcomes = [booking_rush.outcome_label(r if isinstance(r, Exception) else r[0]) for r in results]
    references = [r[1] for r in results if not isinstance(r, Exception) and r[1]]
    addresses = {r[1]: patient_address(i) for i, r in enumerate(results) if not isinstance(r, Exception) and r[1]}
    result = booking_rush.check(engine, rush, outcomes, references, addresses)
    assert result.problems == []
    assert result.outcomes == {"booked": 10, "just_filled": 90} and result.appointments == 13


def test_40_dispenses_race_for_24_units(server_url, engine):
    doctor, patient = make_doctor(engine), make_patient(engine)
    setup = dispensing_race.prepare(engine, units=24, attempts=40, pharmacists=4, password=PASSWORD,
                                    patient_id=patient.id, doctor_id=doctor.id)

    sessions = []  # each pharmacist logs in once; their ten browser tabs share the session cookie
    for name in setup.pharmacists:
        with httpx.Client(base_url=server_url, timeout=60) as client:
            log_in(client, name, PASSWORD)
            sessions.append(client.cookies["portal_staff"])

    def open_form(i, client):
        client.cookies.set("portal_staff", sessions[i % len(sessions)])
        return open_dispense(client, setup.prescription_ids[i])

    def dispense(i, client, token):
        status, location = submit_dispense(client, setup.prescription_ids[i], token)
        return status, flash_messages(client, location) if status == 303 else None

    results = race(40, open_form, dispense, server_url)

    outcomes = [dispensing_race.outcome_label(setup, 0, None, r) if isinstance(r, Exception)
                else dispensing_race.outcome_label(setup, *r) for r in results]
    result = dispensing_race.check(engine, setup, outcomes)
    assert result.problems == []
    assert result.outcomes == {"dispensed": 24, "refused": 16} and result.on_hand == 0
    assert_ledger_consistent(engine)
