"""Accessibility of every kind of admin page, checked by axe-core in a real Chromium.

A staff member logs in through the login page, then axe-core (bundled by
``axe-playwright-python``) runs on the login page, the dashboard, a list, a create form,
an edit form, a detail page, a workflow action's confirmation form, a report and the
change-password page. Any serious or critical violation fails the test, with the rule,
its help text and the offending elements. Needs Debian's Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from models import Role
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.services import appointments
from tests.factories import PASSWORD, make_clinic_session, make_patient, make_staff
from tests.test_booking_browser import chromium, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

BLOCKING = ("serious", "critical")


def _blocking_violations(page) -> list[str]:
    """Serious and critical axe-core violations of the page, one line per rule."""
    results = Axe().run(page)
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            lines.append(f"{violation['impact']} {violation['id']}: {violation['help']} -> {targets}")
    return lines


def test_every_kind_of_admin_page_has_no_serious_accessibility_violation(engine, server, chromium):  # noqa: F811
    make_staff(engine, username="boss", role=Role.admin)
    session, patient = make_clinic_session(engine), make_patient(engine)
    with transaction(engine) as db:
        appointment = appointments.book(db, clinic_session_id=session.id, patient_id=patient.id,
                                        actor=Actor(username="setup")).appointment
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    found: dict[str, list[str]] = {}

    page.goto(f"{server}/admin/login")
    found["login"] = _blocking_violations(page)
    page.fill("#login-username", "boss")
    page.fill("#login-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/admin/")

    pages = {
        "dashboard": "/admin/",
        "list": "/admin/patient/list",
        "create form": "/admin/department/create",
        "edit form": f"/admin/patient/edit/{patient.id}",
        "detail": f"/admin/patient/details/{patient.id}",
        "workflow action form": f"/admin/appointment/action/confirm?pks={appointment.id}",
        "report": "/admin/reports/outpatient-volume",
        "change password": "/admin/password",
    }
    for what, path in pages.items():
        response = page.goto(f"{server}{path}")
        assert response is not None and response.status == 200, (what, response and response.status)
        found[what] = _blocking_violations(page)

    problems = {what: lines for what, lines in found.items() if lines}
    assert problems == {}, "\n".join(f"{what}:\n  " + "\n  ".join(lines) for what, lines in problems.items())
