"""Shared counters for rate limits, so every process sees the same budget."""


from datetime import datetime

from sqlmodel import Field, SQLModel

from models._types import UTCDateTime


class ThrottleBucket(SQLModel, table=True):
    """Hits of one key (e.g. ``login-ip:1.2.3.4``) in the current fixed window."""

    __tablename__ = "throttle_bucket"

    key: str = Field(primary_key=True, max_length=120)
    window_start: datetime = Field(sa_type=UTCDateTime)
    hits: int = Field(default=0)
