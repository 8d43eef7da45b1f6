"""A plain sqladmin list of appointments at ``/plain-admin``, for benchmarks only.

Mounted only when ``PORTAL_BENCH_PLAIN_ADMIN=1`` (``Settings.portal_bench_plain_admin``),
so ``bench/scenarios/admin_list.py`` can measure sqladmin's own list (default paging,
count and filter panel) next to the portal's in the same run, on the same server and
data. It shows the same columns, search and filters as ``views.appointments.AppointmentView``
and otherwise keeps sqladmin's defaults: no row scope, no bounded count, no deferred
join. It is read-only, uses the portal's login (the same session cookie) and is open
to the ``admin`` role only.
"""

from __future__ import annotations

from sqladmin import Admin, ModelView
from sqladmin.filters import ForeignKeyFilter, OperationColumnFilter, StaticValuesFilter
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request

from models import Appointment, AppointmentStatus, BookingChannel, Department, Doctor, Role
from views.auth import AdminAuth

#: Where the plain admin is mounted.
BASE_URL = "/plain-admin"


class PlainAppointmentView(ModelView, model=Appointment):
    """sqladmin's ModelView of appointments: the portal's columns, search, filters and
    sort, everything else sqladmin's default."""

    name = "Appointment"
    name_plural = "Appointments"
    can_create = False
    can_edit = False
    can_delete = False
    page_size = 25
    column_list = [Appointment.reference, Appointment.session_date, Appointment.queue_number, Appointment.patient,
                   Appointment.doctor, Appointment.department, Appointment.status, Appointment.channel,
                   Appointment.booked_at]
    column_searchable_list = [Appointment.reference]
    column_sortable_list = [Appointment.id, Appointment.session_date, Appointment.queue_number, Appointment.status,
                            Appointment.booked_at]
    column_default_sort = [(Appointment.id, True)]
    column_filters = [
        StaticValuesFilter(Appointment.status, values=[(s.value, s.value) for s in AppointmentStatus]),
        ForeignKeyFilter(Appointment.department_id, Department.name, title="Department"),
        ForeignKeyFilter(Appointment.doctor_id, Doctor.full_name, title="Doctor"),
        OperationColumnFilter(Appointment.session_date, title="Date"),
        StaticValuesFilter(Appointment.channel, values=[(c.value, c.value) for c in BookingChannel]),
    ]

    def is_accessible(self, request: Request) -> bool:
        """Open to logged-in administrators only."""
        staff = getattr(request.state, "staff", None)
        return staff is not None and staff.role is Role.admin


def mount_plain_admin(app: Starlette, engine: Engine) -> Admin:
    """Mount sqladmin's plain appointment list at :data:`BASE_URL` on ``app``.

    Args:
        app (Starlette): the portal application.
        engine (Engine): its database engine.

    Returns:
        Admin: the second sqladmin ``Admin``, with :class:`PlainAppointmentView` only.
    """
    admin = Admin(app, engine=engine, base_url=BASE_URL, title="Plain sqladmin (benchmark)",
                  authentication_backend=AdminAuth(engine))
    admin.add_view(PlainAppointmentView)
    return admin
