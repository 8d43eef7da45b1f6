"""Who performs a service call: recorded in the audit trail and on stock movements."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The person (or channel) on whose behalf a service runs.

    Attributes:
        username (str): staff username, or ``patient:online`` for the booking pages,
            ``system`` for seeding and maintenance.
        user_id (int | None): StaffUser id when a staff member acts.
        role (str | None): the staff role, when a staff member acts.
        doctor_id (int | None): the Doctor linked to a doctor's account.
        ip (str | None): client address of the request.
    """

    username: str
    user_id: int | None = None
    role: str | None = None
    doctor_id: int | None = None
    ip: str | None = None


SYSTEM = Actor(username="system")


from contextvars import ContextVar  # noqa: E402

#: The actor of the current request, set by the admin's authentication backend so
#: the change audit (``portal.services.change_audit``) knows who made an admin edit.
current_actor: ContextVar[Actor | None] = ContextVar("current_actor", default=None)
