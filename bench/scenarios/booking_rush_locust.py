"""Locust users of scenario 2 (booking rush): each opens the booking form, and when every
patient has it open, all submit it (see ``bench/locust_burst.py``).

Environment: ``RUSH_SCHEDULE_ID`` (the session), ``RUSH_RUN`` (the run number in the
patients' phone numbers), ``RUSH_FORWARDED`` (``1``: each patient sends its own address as
``X-Forwarded-For``, for a server that trusts 127.0.0.1 as its proxy), and the burst's ``RACE_USERS``, ``RACE_SPREAD``, ``RACE_RESULTS``.
The user class is named on Locust's command line: ``RushPatient``, or ``PingBurst`` for the
ceiling.
"""

from __future__ import annotations

import os
from typing import Any

from bench.locust_burst import BurstUser, Client, PingBurst
from bench.race_flows import booking_reference, open_booking_form, patient_address, simulated_patient, submit_booking

SCHEDULE_ID = int(os.environ.get("RUSH_SCHEDULE_ID", "0"))
RUN = int(os.environ.get("RUSH_RUN", "0"))
FORWARDED = os.environ.get("RUSH_FORWARDED") == "1"

__all__ = ["PingBurst", "RushPatient"]


class RushPatient(BurstUser):
    """A patient: opens the form (not timed), submits it with everyone (timed), then opens the
    confirmation page when booked (after everyone submitted)."""

    request_names = {("GET", "/book/"): "GET /book/{id}", ("POST", "/book/"): "POST /book/{id}",
                     ("GET", "/booked/"): "GET /booked/{link}"}

    def request_headers(self, index: int) -> dict[str, str]:
        """The patient's own address, when the server takes it from ``X-Forwarded-For``."""
        return {"X-Forwarded-For": patient_address(index)} if FORWARDED else {}

    def prepare(self, index: int, client: Client) -> Any:
        """The form's CSRF and one-time submission tokens."""
        return open_booking_form(client, SCHEDULE_ID)

    def act(self, index: int, client: Client, state: Any) -> dict[str, Any]:
        """Submit the form."""
        outcome = submit_booking(client, SCHEDULE_ID, state, simulated_patient(RUN, index))
        return {"outcome": outcome.label, "status": outcome.status, "location": outcome.location}

    def after(self, index: int, client: Client, state: Any, record: dict[str, Any]) -> None:
        """A winner reads the booking reference on the confirmation page."""
        if record.get("outcome") == "booked":
            record["reference"] = booking_reference(client, record["location"])
