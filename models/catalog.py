"""Versions of what the patient pages show of each department (for caching rendered pages)."""

from sqlmodel import Field, SQLModel


class CatalogVersion(SQLModel, table=True):
    """A counter per department, raised by database triggers whenever what the patient pages
    show of that department may have changed.

    Triggers (migration ``0003``) raise ``version`` in the same transaction as any insert,
    update or delete of the department, its doctor links, its doctors, or its clinic sessions
    (places booked, status, times, fees). Portal processes keep rendered pages keyed by
    these versions: a page is served from memory only while the versions it was rendered
    at are still the current ones. Rows are never deleted (a version must never repeat), and
    there is no foreign key, so a row outlives its department.
    """

    __tablename__ = "catalog_version"

    department_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    version: int = Field(default=0, description="Raised by one on every change (never lowered)")
