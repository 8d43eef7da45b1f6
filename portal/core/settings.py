"""Portal settings, read once from the environment (and an optional ``.env`` file).

Every setting has a default that gives a working demo on a fresh machine: an SQLite
file in the working directory, a secret key generated on first start and kept in
``.secret_key`` (with a warning, since production must set ``SECRET_KEY``), and the
hospital's time zone ``Asia/Shanghai``.
"""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

SECRET_KEY_FILE = Path(".secret_key")


class Settings(BaseSettings):
    """Configuration of one portal process.

    Attributes:
        database_url (str): SQLAlchemy URL; ``sqlite:///./portal.db`` by default,
            ``mysql+pymysql://user:pass@host/db`` for MySQL/MariaDB.
        secret_key (str): key for signed cookies and tokens; generated and stored in
            ``.secret_key`` when unset.
        portal_timezone (str): IANA zone in which clinic sessions are kept and datetimes shown.
        portal_demo_password (str | None): password of the demo staff accounts; random
            when unset.
        hospital_name (str): shown in the admin title and on patient pages.
        currency (str): ISO 4217 code; money is stored in its smallest unit.
        login_idle_minutes (int): a staff login ends after this many idle minutes
            (``LOGIN_IDLE_MINUTES``; the older name ``SESSION_IDLE_MINUTES`` is read too).
        login_max_hours (int): a staff login ends after this many hours at most
            (``LOGIN_MAX_HOURS``; or ``SESSION_MAX_HOURS``).
        secure_cookies (bool): mark cookies ``Secure`` on every request; without it they
            are ``Secure`` when the request came over HTTPS (as a trusted proxy reports it).
        db_pool_size (int): MySQL connections per process, opened as needed and kept; the
            most a process opens (requests beyond it wait for a free one).
        portal_bench_plain_admin (bool): also mount sqladmin's plain appointment list at
            ``/plain-admin`` (``views.plain_admin``), for the admin-list benchmark only.
        db_read_timeout_seconds (int): MySQL: seconds a query's answer may take before the
            connection is given up (long reports and backups stay well within it).
        db_ping_timeout_seconds (int): MySQL: seconds the liveness ping of a pooled
            connection, and the greeting of a new one, may take; a frozen or overloaded
            server then gets the 503 page within a few seconds instead of a long wait.
        booking_rate_limit (int): booking submissions accepted per client address per
            minute on the patient pages (5); raised only for load tests, where every
            simulated patient comes from one address.
        lookup_rate_limit (int): "My booking" lookups accepted per client address per
            minute (10).
        forwarded_allow_ips (str): addresses of the reverse proxies in front of the portal
            (comma-separated, e.g. ``127.0.0.1``) whose ``X-Forwarded-For`` and
            ``X-Forwarded-Proto`` are trusted, so rate limits and the audit see the real
            client and the login cookie is ``Secure`` for HTTPS requests; empty (the
            default): the headers are ignored.
        expiry_window_days (int): days ahead within which a stock batch counts as
            "expiring soon" (30): the dashboard tile, the list filters and the pharmacy
            report all use it (``portal.services.stock_terms``).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./portal.db"
    secret_key: str = ""
    portal_timezone: str = "Asia/Shanghai"
    portal_demo_password: str | None = None
    hospital_name: str = "City General Hospital"
    currency: str = "CNY"
    login_idle_minutes: int = Field(
        default=30, ge=1, validation_alias=AliasChoices("login_idle_minutes", "session_idle_minutes"))
    login_max_hours: int = Field(
        default=12, ge=1, validation_alias=AliasChoices("login_max_hours", "session_max_hours"))
    secure_cookies: bool = False
    db_pool_size: int = Field(default=10, ge=1)
    portal_bench_plain_admin: bool = False
    db_read_timeout_seconds: int = Field(default=30, ge=1)
    db_ping_timeout_seconds: int = Field(default=3, ge=1)
    booking_rate_limit: int = Field(default=5, ge=1)
    lookup_rate_limit: int = Field(default=10, ge=1)
    forwarded_allow_ips: str = ""
    expiry_window_days: int = Field(default=30, ge=0, le=3650)

    @field_validator("portal_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone: fail loudly at start-up
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The hospital's time zone as a ``ZoneInfo``."""
        return ZoneInfo(self.portal_timezone)

    @property
    def is_sqlite(self) -> bool:
        """True when the database is an SQLite file."""
        return self.database_url.startswith("sqlite")


def _load_or_create_secret_key() -> str:
    if SECRET_KEY_FILE.exists():
        return SECRET_KEY_FILE.read_text().strip()
    key = secrets.token_urlsafe(48)
    SECRET_KEY_FILE.write_text(key)
    SECRET_KEY_FILE.chmod(0o600)
    log.warning(
        "SECRET_KEY is not set: generated one and stored it in %s. "
        "Set SECRET_KEY in production, the same for every process.",
        SECRET_KEY_FILE.resolve(),
    )
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, reading the environment on first call.

    Returns:
        Settings: the one instance for this process.
    """
    settings = Settings()
    if not settings.secret_key:
        settings.secret_key = _load_or_create_secret_key()
    return settings
