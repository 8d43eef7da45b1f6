"""The staff admin (sqladmin): one view per entity, login, the dashboard and the reports."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from portal.core.db import session_factory
from portal.core.settings import get_settings
from portal.services import change_audit
from views._refusals import install_refusal_logging
from views.account import ChangePasswordView
from views.appointments import AppointmentView, EncounterView
from views.audit import AuditEventView
from views.auth import AdminAuth
from views.authorization import PortalAuthorization, check_configuration
from views.clinic import ClinicSessionView, DepartmentView, DoctorView, Icd10CodeView
from views.dashboard import PortalAdmin
from views.inpatient import INPATIENT_VIEWS
from views.patients import PatientView
from views.pharmacy import (
    MedicineView,
    PrescriptionItemView,
    PrescriptionView,
    StockBatchView,
    StockMovementView,
    SupplierView,
)
from views.reports import REPORT_VIEWS
from views.staff import StaffUserView

TEMPLATES_DIR = Path(__file__).parent / "templates"

#: Every admin screen, in menu order.
ALL_VIEWS = [
    AppointmentView, PatientView, EncounterView,
    ClinicSessionView, DoctorView, DepartmentView,
    *INPATIENT_VIEWS,
    PrescriptionView, PrescriptionItemView, MedicineView, StockBatchView, StockMovementView, SupplierView,
    *REPORT_VIEWS,
    Icd10CodeView,
    StaffUserView, AuditEventView,
    ChangePasswordView,
]


def create_admin(app: Starlette, engine: Engine) -> PortalAdmin:
    """Mount the admin at ``/admin`` on ``app``, using ``engine``; its home page is the
    dashboard (``views.dashboard``) and its "Reports" menu holds ``views.reports``.

    Admin sessions carry ``audit_changes=True`` so every create, edit and delete is
    audited in its own transaction (``portal.services.change_audit``). Every route asks
    ``PortalAuthorization`` (the table in ``views.permissions``); the table is checked
    against the views at start-up. A refused form is logged as one WARNING line, not a
    traceback (``views._refusals``).
    """
    change_audit.install()
    install_refusal_logging()
    admin = PortalAdmin(
        app,
        engine=engine,  # read by the dashboard and the reports
        session_maker=session_factory(engine, audit_changes=True),
        title=f"{get_settings().hospital_name}",
        base_url="/admin",
        templates_dir=str(TEMPLATES_DIR),
        authentication_backend=AdminAuth(engine),
        authorization_backend=PortalAuthorization(),
    )
    for view in ALL_VIEWS:
        admin.add_view(view)
    check_configuration(admin)
    return admin
