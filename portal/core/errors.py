"""Typed domain errors. Each message is written for the staff member or patient who sees it."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the request; nothing was changed.

    Attributes:
        message (str): a sentence fit to show to the user.
        field (str | None): the input the refusal is about, named as the service's
            argument is (``quantity``, ``expiry_date``, ``new_password``); a form marks
            that field with the message. None when it is about the request as a whole.
    """

    status_code = 409

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The row asked for does not exist (or is not visible to the actor)."""

    status_code = 404


class ValidationFailed(DomainError):
    """The input is malformed or out of range."""

    status_code = 422


class PermissionDenied(DomainError):
    """The actor may not do this."""

    status_code = 403


class Busy(DomainError):
    """The database stayed locked after the bounded retries; try again shortly."""

    status_code = 503

    def __init__(self, message: str = "The system is busy; please try again in a moment.") -> None:
        super().__init__(message)


class InvalidTransition(DomainError):
    """A status change that the lifecycle does not allow (names current and requested)."""

    def __init__(self, what: str, current: str, requested: str, why: str = "") -> None:
        text = f"{what} is {current.replace('_', ' ')}; it cannot be {requested.replace('_', ' ')}"
        super().__init__(text + (f" ({why})." if why else "."))
        self.current = current
        self.requested = requested


class SlotFull(DomainError):
    """The clinic session has no place left."""


class ClinicSessionNotBookable(DomainError):
    """The clinic session is closed, cancelled or already past."""


class DuplicateBooking(DomainError):
    """The patient already holds an active appointment in this session."""


class InsufficientStock(DomainError):
    """Usable stock does not cover the request.

    Attributes:
        shortages (list[tuple[str, int]]): (medicine, missing quantity in dispensing units).
    """

    def __init__(self, shortages: list[tuple[str, int]]) -> None:
        parts = [f"{name}: {missing} short" for name, missing in shortages]
        super().__init__("Not enough usable stock: " + "; ".join(parts) + ".")
        self.shortages = shortages


class BatchNotUsable(DomainError):
    """The batch is expired, quarantined, recalled or depleted for this operation."""


class WitnessRequired(DomainError):
    """A controlled medicine needs a second staff member as witness."""


class ConcurrentChange(DomainError):
    """Someone else changed the same record in the meantime; nothing was saved.

    Raised after a conditional UPDATE kept finding the row changed since it was read
    (a few re-reads are tried first). Reloading and repeating the action is safe.
    """

    def __init__(
        self,
        message: str = "Someone else changed this record at the same moment; nothing was saved. "
        "Please reload and try again.",
    ) -> None:
        super().__init__(message)
