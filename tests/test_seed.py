"""The demo hospital is deterministic, sized as promised, and internally consistent."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select, text

import models
from models import Appointment, ClinicSession, Doctor, Patient, StaffUser, StockBatch, StockMovement
from portal.core import schema
from portal.core.db import build_engine
from portal.ops.integrity import check_invariants_report
from portal.ops.seed.demo import seed_demo
from portal.ops.seed.reference import parse_forms_and_strengths
from portal.services.national_id import national_id_valid

TODAY = date(2026, 11, 20)
SKIP_COLUMNS = {"password_hash", "occurred_at"}  # salted hashes, and the seed's own audit time


def _dump(engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in models.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name not in SKIP_COLUMNS]
            pk = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*pk))]
    return out


def test_same_seed_same_hospital_and_consistent(fresh_db_url):
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    try:
        report = seed_demo(engine, scale=1, seed=7, today=TODAY, demo_password="demo-password-1")
        first = _dump(engine)
        assert report.passwords == {u: "demo-password-1" for u in ("admin", "reception", "doctor", "nurse", "pharmacist")}

        with pytest.raises(ValueError, match="already holds"):
            seed_demo(engine, scale=1, seed=7, today=TODAY)

        schema.downgrade(fresh_db_url, "base")
        schema.upgrade(fresh_db_url)
        seed_demo(engine, scale=1, seed=7, today=TODAY, demo_password="demo-password-1")
        assert _dump(engine) == first

        with engine.connect() as conn:
            count = lambda model: conn.scalar(select(func.count()).select_from(model))  # noqa: E731
            assert count(Doctor) == 40 and count(Patient) == 500 and count(Appointment) == 3000
            assert count(StaffUser) == 5
            # demo patients can find their booking with their ID: every ID passes GB 11643's check
            ids = conn.scalars(select(Patient.national_id).where(Patient.national_id.is_not(None))).all()
            assert len(ids) > 300 and all(national_id_valid(i) for i in ids)
            # booked_count equals the active appointments of every session
            bad = conn.execute(text(
                "SELECT s.id FROM clinic_session s LEFT JOIN appointment a ON a.clinic_session_id = s.id AND a.active_marker = 1 "
                "GROUP BY s.id, s.booked_count HAVING COUNT(a.id) <> s.booked_count")).all()
            assert bad == []
            # the stock ledger: on hand equals the sum of movements, never negative
            ledger = conn.execute(text(
                "SELECT b.id FROM stock_batch b LEFT JOIN stock_movement m ON m.batch_id = b.id "
                "GROUP BY b.id, b.quantity_on_hand HAVING COALESCE(SUM(m.quantity), 0) <> b.quantity_on_hand "
                "OR b.quantity_on_hand < 0")).all()
            assert ledger == []
            assert conn.scalar(select(func.min(StockMovement.balance_after))) >= 0
            # the demo has the stock risks the dashboard shows
            assert conn.scalar(select(func.count()).select_from(StockBatch).where(
                StockBatch.status == "active", StockBatch.expiry_date <= TODAY)) > 0
            assert conn.scalar(select(func.count()).select_from(ClinicSession).where(
                ClinicSession.session_date > TODAY, ClinicSession.booked_count == ClinicSession.capacity)) > 0
        # and every rule of the integrity check holds (the seeded history is exempt from the audit rules)
        report = check_invariants_report(engine)
        assert report.violations == [], [str(v) for v in report.violations]
        assert report.seeded["appointment"] == 3000 and report.seeded["stock_movement"] > 0
    finally:
        engine.dispose()


def test_different_seed_different_patients(fresh_db_url, tmp_path):
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    other_url = f"sqlite:///{tmp_path}/other.db"
    schema.upgrade(other_url)
    other = build_engine(other_url, pool_size=1)
    try:
        seed_demo(engine, scale=1, seed=1, today=TODAY, demo_password="x" * 12)
        seed_demo(other, scale=1, seed=2, today=TODAY, demo_password="x" * 12)
        def names(e):
            with e.connect() as conn:
                return conn.execute(select(Patient.full_name).order_by(Patient.id).limit(20)).all()

        assert names(engine) != names(other)
    finally:
        engine.dispose()
        other.dispose()


def test_who_forms_and_strengths_are_split():
    assert parse_forms_and_strengths("Oral liquid: 125 mg/5 ml. Tablet: 100 mg; 500 mg.") == [
        ("Oral liquid", "125 mg/5 ml"), ("Tablet", "100 mg"), ("Tablet", "500 mg")]
    assert parse_forms_and_strengths("Inhalation") == [("Inhalation", "")]
    assert parse_forms_and_strengths("") == []


def test_bulk_load_writes_the_same_rows_as_inserts(fresh_db_url, mysql_only):
    """``LOAD DATA LOCAL INFILE`` (the MariaDB seed path) stores exactly what INSERTs store."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    other_name = make_url(fresh_db_url).database + "_ins"
    server = create_engine(make_url(fresh_db_url).set(database=None), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {other_name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    other_url = make_url(fresh_db_url).set(database=other_name).render_as_string(hide_password=False)
    engine = other = None
    try:
        schema.upgrade(fresh_db_url)
        schema.upgrade(other_url)
        engine, other = build_engine(fresh_db_url, pool_size=2), build_engine(other_url, pool_size=2)
        seed_demo(engine, scale=1, seed=3, today=TODAY, demo_password="demo-password-1", bulk=True)
        seed_demo(other, scale=1, seed=3, today=TODAY, demo_password="demo-password-1", bulk=False)
        bulk_rows, insert_rows = _dump(engine), _dump(other)
        assert bulk_rows.keys() == insert_rows.keys()
        for table in bulk_rows:
            assert bulk_rows[table] == insert_rows[table], table
        assert len(bulk_rows["appointment"]) == 3000
    finally:
        for e in (engine, other):
            if e is not None:
                e.dispose()
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {other_name}"))
        server.dispose()


def test_bulk_load_refuses_a_duplicate_and_writes_nothing(fresh_db_url, mysql_only):
    """A duplicate key (which ``LOAD DATA LOCAL`` would skip with a warning) undoes the whole load."""
    import pymysql

    from models import Department
    from portal.ops.seed.bulk import load_rows

    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=1)
    try:
        rows = [{"id": i, "code": f"D{i}", "name": "Same name" if i > 1 else "Other", "description": "a\tb\\c\nd",
                 "location": None, "phone": None, "is_active": True} for i in (1, 2, 3)]
        with pytest.raises(pymysql.err.MySQLError):
            load_rows(engine, Department.__table__, rows)
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Department)) == 0
        rows[2]["name"] = "Third"
        assert load_rows(engine, Department.__table__, rows) == 3
        with engine.connect() as conn:
            assert conn.execute(select(Department.description, Department.location).where(Department.id == 2)).one() \
                == ("a\tb\\c\nd", None)
    finally:
        engine.dispose()
