"""Locust users of scenario 4 (dispensing race): pharmacists' browser tabs, each with one
prescription's dispense confirmation page open; when every tab has it, all press
"Dispense" (see ``bench/locust_burst.py``).

Environment: ``RACE_PRESCRIPTIONS`` (comma-separated ids, one per user), ``RACE_PHARMACISTS``
(comma-separated usernames), ``RACE_PASSWORD``, and the burst's ``RACE_USERS``,
``RACE_SPREAD``, ``RACE_RESULTS``. User ``i`` works as pharmacist ``i mod P``: the first
tab of each pharmacist logs in, the others share its session cookie (as tabs of one
browser do), so the argon2 logins cost P password checks, not one per tab.
The user class is named on Locust's command line: ``PharmacistTab``, or ``PingBurst``.
"""

from __future__ import annotations

import os
from typing import Any

from gevent.event import Event
from gevent.lock import Semaphore

from bench.locust_burst import BurstUser, Client, PingBurst
from bench.race_flows import flash_messages, log_in, open_dispense, submit_dispense

PRESCRIPTIONS = [int(i) for i in os.environ.get("RACE_PRESCRIPTIONS", "").split(",") if i]
PHARMACISTS = [n for n in os.environ.get("RACE_PHARMACISTS", "").split(",") if n]
PASSWORD = os.environ.get("RACE_PASSWORD", "")

_logged_in = {name: Event() for name in PHARMACISTS}
_cookies: dict[str, list] = {}
_login_gate = Semaphore(2)  # argon2 is CPU-bound: two logins at a time are as fast as more

__all__ = ["PharmacistTab", "PingBurst"]


class PharmacistTab(BurstUser):
    """One tab: logged in (or sharing its pharmacist's session), confirmation page open
    (not timed); presses "Dispense" with every other tab (timed); then reads the outcome
    message on the page it was sent to (after every tab pressed)."""

    request_names = {("POST", "/admin/login"): "POST /admin/login",
                     ("GET", "/admin/prescription/action/dispense"): "GET dispense confirmation",
                     ("POST", "/admin/prescription/action/dispense"): "POST dispense",
                     ("GET", "/admin/prescription/details/"): "GET prescription (flash)"}

    def prepare(self, index: int, client: Client) -> Any:
        """Log in (or take the session of this pharmacist's first tab); open the confirmation."""
        name = PHARMACISTS[index % len(PHARMACISTS)]
        if index < len(PHARMACISTS):
            try:
                with _login_gate:
                    log_in(client, name, PASSWORD)
                _cookies[name] = list(self.client.cookiejar)
            finally:
                _logged_in[name].set()
        else:
            _logged_in[name].wait()
            for cookie in _cookies.get(name, []):
                self.client.cookiejar.set_cookie(cookie)
        return open_dispense(client, PRESCRIPTIONS[index])

    def act(self, index: int, client: Client, state: Any) -> dict[str, Any]:
        """Press "Dispense" (POST the confirmation form)."""
        status, location = submit_dispense(client, PRESCRIPTIONS[index], state)
        return {"outcome": "answered" if status == 303 else f"other {status}", "status": status,
                "location": location}

    def after(self, index: int, client: Client, state: Any, record: dict[str, Any]) -> None:
        """Read the flash message(s) on the page the action redirected to."""
        if record.get("status") == 303:
            record["messages"] = flash_messages(client, record["location"])
