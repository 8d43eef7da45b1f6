"""The reports: every figure of a small, known hospital checked against hand-computed
expectations, in the service functions, on the pages and in the CSV exports.

The data set (``hospital`` fixture), hospital zone Asia/Shanghai (UTC+8):

Departments Cardiology (A1, A2) and Dermatology (B1). Sessions:
  S1 A1 Cardiology  2026-03-02 cap 10: completed x3, no-show, cancelled, pending  (booked 4)
  S2 A1 Cardiology  2026-03-03 cap 5 : completed, confirmed, checked in           (booked 3)
  S3 A2 Cardiology  2026-03-03 cap 4 : session cancelled; cancelled x2            (booked 0)
  S4 B1 Dermatology 2026-03-02 cap 8 : completed x2, no-show x2, cancelled        (booked 2)
  S5 B1 Dermatology 2026-04-01 cap 6 : pending x2, confirmed                      (booked 3)
  S6 A2 Cardiology  2026-02-27 cap 9 : completed x5 (before the range)
The range is 2026-03-01 .. 2026-04-30.

Pharmacy: M1 (price 150 fen), M2 (price 80), M3 (price 1000). Dispensing (local times):
  M1 x10 2026-03-02 09:00 (S1 prescription, Cardiology)
  M1 x5  2026-03-03 00:30 (S4 prescription, Dermatology) -- UTC 2026-03-02 16:30
  M2 x20 2026-03-02 23:59 (S1 prescription, Cardiology) -- UTC 15:59 the same day
  M1 x3  2026-02-28 12:00 (before the range)
  M2 x4  2026-05-01 00:10 (after the range)                -- UTC 2026-04-30 16:10
Expiry write-offs of B2 (M2, cost 50): -30 on 2026-03-15, -10 on 2026-04-01 00:05 local
(UTC 2026-03-31 16:05, so April).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, time, timedelta
from types import SimpleNamespace

import pytest

from models import AppointmentStatus as S
from models import BatchStatus, ClinicSessionStatus, MovementKind, PrescriptionStatus, Role
from portal.core import clock
from portal.core.db import transaction
from portal.services import reports
from portal.services.reports import Grain, InvalidFilters, ReportFilters
from tests.factories import (
    local_datetime,
    login,
    make_appointment,
    make_clinic_session,
    make_department,
    make_doctor,
    make_medicine,
    make_movement,
    make_prescription_lines,
    make_received_batch,
    make_staff,
)

START, END = date(2026, 3, 1), date(2026, 4, 30)
STATUSES = ["pending", "confirmed", "checked_in", "completed", "cancelled", "no_show"]


def counts(**kw) -> dict[str, int]:
    return {s: kw.get(s, 0) for s in STATUSES}


@pytest.fixture
def hospital(engine):
    cardio = make_department(engine, code="CARD", name="Cardiology")
    derm = make_department(engine, code="DERM", name="Dermatology")
    a1 = make_doctor(engine, full_name="Alice Wang", title="Chief Physician", department=cardio)
    a2 = make_doctor(engine, full_name="Arthur Li", title=None, department=cardio)
    b1 = make_doctor(engine, full_name="Bei Chen", title="Attending Physician", department=derm)

    def db(doctor, dept, day, cap, *statuses, status=ClinicSessionStatus.open, start=time(8, 0)):
        s = make_clinic_session(engine, doctor=doctor, department=dept, day=day, capacity=cap, status=status, start=start)
        appts = [make_appointment(engine, clinic_session=s, status=st) for st in statuses]
        return s, appts

    s1, s1a = db(a1, cardio, date(2026, 3, 2), 10, S.completed, S.completed, S.completed, S.no_show,
                      S.cancelled, S.pending)
    s2, _ = db(a1, cardio, date(2026, 3, 3), 5, S.completed, S.confirmed, S.checked_in)
    db(a2, cardio, date(2026, 3, 3), 4, S.cancelled, S.cancelled, status=ClinicSessionStatus.cancelled)
    s4, s4a = db(b1, derm, date(2026, 3, 2), 8, S.completed, S.completed, S.no_show, S.no_show, S.cancelled)
    db(b1, derm, date(2026, 4, 1), 6, S.pending, S.pending, S.confirmed)
    db(a2, cardio, date(2026, 2, 27), 9, *[S.completed] * 5)

    m1 = make_medicine(engine, name="amoxicillin", strength="500 mg", form="Capsule", unit="capsule", unit_price=150)
    m2 = make_medicine(engine, name="ibuprofen", strength="400 mg", form="Tablet", unit="tablet", unit_price=80)
    m3 = make_medicine(engine, name="insulin", strength="100 IU/ml", form="Injection", unit="vial", unit_price=1000)
    today = clock.today()
    b1_ = make_received_batch(engine, medicine=m1, quantity=500, unit_cost=100)
    b2 = make_received_batch(engine, medicine=m2, quantity=100, unit_cost=50, expiry=today - timedelta(days=5))
    make_received_batch(engine, medicine=m3, quantity=10, unit_cost=700, expiry=today + timedelta(days=10))
    make_received_batch(engine, medicine=m3, quantity=0, unit_cost=700, status=BatchStatus.depleted)
    make_received_batch(engine, medicine=m1, quantity=50, unit_cost=100, status=BatchStatus.quarantined)

    _, (rx_a_m1, rx_a_m2) = make_prescription_lines(engine, doctor=a1, appointment=s1a[0],
                                              status=PrescriptionStatus.dispensed, lines=[(m1, 10), (m2, 20)])
    _, (rx_b_m1,) = make_prescription_lines(engine, doctor=b1, appointment=s4a[0],
                                      status=PrescriptionStatus.dispensed, lines=[(m1, 5)])
    _, (rx_old,) = make_prescription_lines(engine, doctor=a1, status=PrescriptionStatus.dispensed, lines=[(m1, 3)])
    _, (rx_late,) = make_prescription_lines(engine, doctor=a1, status=PrescriptionStatus.dispensed, lines=[(m2, 4)])

    def dispense(batch, qty, day, at, item):
        make_movement(engine, batch=batch, kind=MovementKind.dispense, quantity=-qty,
                      created_at=local_datetime(day, at), prescription_item=item)

    dispense(b1_, 10, date(2026, 3, 2), time(9, 0), rx_a_m1)
    dispense(b1_, 5, date(2026, 3, 3), time(0, 30), rx_b_m1)
    dispense(b2, 20, date(2026, 3, 2), time(23, 59), rx_a_m2)
    dispense(b1_, 3, date(2026, 2, 28), time(12, 0), rx_old)
    dispense(b2, 4, date(2026, 5, 1), time(0, 10), rx_late)
    make_movement(engine, batch=b2, kind=MovementKind.expiry_write_off, quantity=-30,
                  created_at=local_datetime(date(2026, 3, 15), time(10, 0)))
    make_movement(engine, batch=b2, kind=MovementKind.expiry_write_off, quantity=-10,
                  created_at=local_datetime(date(2026, 4, 1), time(0, 5)))
    admin = make_staff(engine, role=Role.admin)
    return SimpleNamespace(cardio=cardio, derm=derm, a1=a1, a2=a2, b1=b1, m1=m1, m2=m2, m3=m3, admin=admin,
                           s1=s1, s2=s2)


def _filters(dept=None, name=None, grain=Grain.month, start=START, end=END) -> ReportFilters:
    return ReportFilters(start, end, dept, name, grain)


def _read(engine, fn, *args, **kw):
    with transaction(engine, write=False) as db:
        return fn(db, *args, **kw)


# -- service figures ----------------------------------------------------------------------------
def test_outpatient_volume_by_month_department_and_rates(engine, hospital):
    v = _read(engine, reports.outpatient_volume, _filters())
    assert [(r.label, r.counts) for r in v.by_period] == [
        ("2026-03", counts(pending=1, confirmed=1, checked_in=1, completed=6, cancelled=4, no_show=3)),
        ("2026-04", counts(pending=2, confirmed=1)),
    ]
    assert [r.total for r in v.by_period] == [16, 3]
    assert v.total.counts == counts(pending=3, confirmed=2, checked_in=1, completed=6, cancelled=4, no_show=3)
    assert v.total.total == 19
    assert v.total.no_show_rate == pytest.approx(3 / 9)
    assert v.total.cancellation_rate == pytest.approx(4 / 19)
    assert v.by_period[1].no_show_rate is None  # nothing settled in April yet
    assert v.by_period[1].cancellation_rate == 0
    assert [(r.label, r.counts) for r in v.by_department] == [
        ("Cardiology", counts(pending=1, confirmed=1, checked_in=1, completed=4, cancelled=3, no_show=1)),
        ("Dermatology", counts(pending=2, confirmed=1, completed=2, cancelled=1, no_show=2)),
    ]
    assert [r.total for r in v.by_department] == [11, 8]
    assert v.by_department[0].no_show_rate == pytest.approx(1 / 5)
    assert v.by_department[1].cancellation_rate == pytest.approx(1 / 8)
    assert not v.is_empty


def test_outpatient_volume_by_day_fills_every_day(engine, hospital):
    v = _read(engine, reports.outpatient_volume, _filters(grain=Grain.day))
    assert len(v.by_period) == 61
    assert v.by_period[0].label == "2026-03-01" and v.by_period[-1].label == "2026-04-30"
    busy = {r.label: r.counts for r in v.by_period if r.total}
    assert busy == {
        "2026-03-02": counts(pending=1, completed=5, cancelled=2, no_show=3),
        "2026-03-03": counts(confirmed=1, checked_in=1, completed=1, cancelled=2),
        "2026-04-01": counts(pending=2, confirmed=1),
    }
    assert sum(r.total for r in v.by_period) == 19


def test_outpatient_volume_for_one_department_and_empty_range(engine, hospital):
    v = _read(engine, reports.outpatient_volume, _filters(hospital.cardio.id, "Cardiology"))
    assert [r.total for r in v.by_period] == [11, 0]
    assert [r.label for r in v.by_department] == ["Cardiology"]
    assert v.total.counts == counts(pending=1, confirmed=1, checked_in=1, completed=4, cancelled=3, no_show=1)
    empty = _read(engine, reports.outpatient_volume, _filters(start=date(2025, 1, 1), end=date(2025, 1, 31)))
    assert empty.is_empty and empty.by_department == [] and empty.total.total == 0


def test_doctor_workload(engine, hospital):
    w = _read(engine, reports.doctor_workload, _filters())
    rows = [(r.doctor_id, r.doctor_name, r.sessions, r.capacity, r.booked, r.completed) for r in w.rows]
    assert rows == [
        (hospital.a1.id, "Chief Physician Alice Wang", 2, 15, 8, 4),
        (hospital.b1.id, "Attending Physician Bei Chen", 2, 14, 7, 2),
    ]
    # A no-show used its place (models.ACTIVE_STATUSES), so it counts as booked.
    assert w.rows[0].capacity_used == pytest.approx(8 / 15)
    assert w.rows[1].capacity_used == pytest.approx(7 / 14)
    t = w.total
    assert (t.sessions, t.capacity, t.booked, t.completed) == (4, 29, 15, 6)
    assert t.capacity_used == pytest.approx(15 / 29)
    only_derm = _read(engine, reports.doctor_workload, _filters(hospital.derm.id, "Dermatology"))
    assert [(r.doctor_name, r.sessions, r.capacity, r.booked, r.completed) for r in only_derm.rows] == [
        ("Attending Physician Bei Chen", 2, 14, 7, 2)]
    # A2's only session in the range is cancelled: A2 does not appear at all.
    assert hospital.a2.id not in {r.doctor_id for r in w.rows}
    assert _read(engine, reports.doctor_workload, _filters(start=date(2025, 1, 1), end=date(2025, 1, 2))).is_empty


def test_pharmacy_report(engine, hospital):
    p = _read(engine, reports.pharmacy_report, _filters(), today=clock.today())
    assert [(m.medicine_id, m.name, m.unit, m.quantity, m.value) for m in p.top_medicines] == [
        (hospital.m1.id, "amoxicillin 500 mg Capsule", "capsule", 15, 2250),
        (hospital.m2.id, "ibuprofen 400 mg Tablet", "tablet", 20, 1600),
    ]
    assert (p.medicines_dispensed, p.dispensed_quantity, p.dispensed_value) == (2, 35, 3850)
    assert len(p.per_day) == 61
    assert {d.label: (d.quantity, d.value) for d in p.per_day if d.quantity} == {
        "2026-03-02": (30, 3100), "2026-03-03": (5, 750)}
    assert [(w.label, w.quantity, w.value) for w in p.write_offs] == [("2026-03", 30, 1500), ("2026-04", 10, 500)]
    assert (p.write_off_quantity, p.write_off_value) == (40, 2000)
    # On hand: M1 500-10-5-3 = 482 x 100; M2 100-20-4-30-10 = 36 x 50 (past expiry); M3 10 x 700.
    s = p.stock
    assert (s.batches, s.units, s.value) == (3, 528, 48200 + 1800 + 7000)
    assert (s.expired_batches, s.expired_units, s.expired_value) == (1, 36, 1800)


def test_pharmacy_report_by_department(engine, hospital):
    cardio = _read(engine, reports.pharmacy_report, _filters(hospital.cardio.id, "Cardiology"), today=clock.today())
    assert [(m.name, m.quantity, m.value) for m in cardio.top_medicines] == [
        ("ibuprofen 400 mg Tablet", 20, 1600), ("amoxicillin 500 mg Capsule", 10, 1500)]
    assert {d.label: (d.quantity, d.value) for d in cardio.per_day if d.quantity} == {"2026-03-02": (30, 3100)}
    derm = _read(engine, reports.pharmacy_report, _filters(hospital.derm.id, "Dermatology"), today=clock.today())
    assert (derm.dispensed_quantity, derm.dispensed_value) == (5, 750)
    assert {d.label: (d.quantity, d.value) for d in derm.per_day if d.quantity} == {"2026-03-03": (5, 750)}
    assert derm.write_off_value == 2000  # write-offs and stock are hospital-wide
    empty = _read(engine, reports.pharmacy_report, _filters(start=date(2025, 6, 1), end=date(2025, 6, 30)),
                  today=clock.today())
    assert empty.is_empty and empty.top_medicines == [] and empty.write_off_quantity == 0


# -- filter validation ------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "field", "text"), [
    ({"date_from": "2026-13-01"}, "date_from", "is not a date"),
    ({"date_to": "yesterday"}, "date_to", "is not a date"),
    ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "date_to", "before the start"),
    ({"date_from": "2024-01-01", "date_to": "2026-03-01"}, "date_to", "at most two years"),
    ({"date_from": "1999-12-31"}, "date_from", "between 2000-01-01"),
    ({"department": "abc"}, "department", "is not a department"),
    ({"department": "99999"}, "department", "No department has the id 99999"),
    ({"grain": "week"}, "grain", "day or by month"),
])
def test_bad_filters_are_refused_with_a_sentence(engine, params, field, text):
    with pytest.raises(InvalidFilters) as caught:
        _read(engine, reports.parse_filters, today=date(2026, 3, 31), **params)
    assert text in caught.value.errors[field]


def test_filter_defaults_and_grain(engine, hospital):
    f = _read(engine, reports.parse_filters, today=date(2026, 3, 31))
    assert (f.start, f.end, f.department_id, f.grain) == (date(2026, 3, 2), date(2026, 3, 31), None, Grain.day)
    f = _read(engine, reports.parse_filters, today=date(2026, 3, 31), date_from="2025-01-01",
              department=str(hospital.derm.id))
    assert (f.department_name, f.grain, f.days) == ("Dermatology", Grain.month, 455)
    f = _read(engine, reports.parse_filters, today=date(2026, 3, 31), date_from="2024-03-31", date_to="2026-03-31")
    assert f.days == reports.MAX_RANGE_DAYS


# -- pages and CSV -------------------------------------------------------------------------------
def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'figure-label">([^<]+)</div>\s*<div class="figure-value">([^<]+)</div>', html))


def _q(**kw) -> str:
    return "&".join(f"{k}={v}" for k, v in kw.items())


def test_outpatient_page_and_csv(client, hospital):
    login(client, hospital.admin.username)
    base = "/admin/reports/outpatient-volume?" + _q(date_from=START, date_to=END, grain="month")
    page = client.get(base)
    assert page.status_code == 200
    assert _figures(page.text) == {
        "Appointments": "19", "Completed visits": "6", "No-show rate": "33.3%",
        "Cancellation rate": "21.1%", "Busiest month": "16",
    }
    assert "<svg" in page.text and "Appointments per month by status" in page.text
    assert '<td class="num">21.1%</td>' in page.text  # right-aligned, formatted
    header = ["Month", "Pending", "Confirmed", "Checked in", "Completed", "Cancelled", "No-show", "Total",
              "No-show rate", "Cancellation rate"]
    assert _csv(client.get(base + "&export=by-month")) == [
        header,
        ["2026-03", "1", "1", "1", "6", "4", "3", "16", "33.3", "25.0"],
        ["2026-04", "2", "1", "0", "0", "0", "0", "3", "", "0.0"],
        ["Total", "3", "2", "1", "6", "4", "3", "19", "33.3", "21.1"],
    ]
    assert _csv(client.get(base + "&export=by-department")) == [
        ["Department", *header[1:]],
        ["Cardiology", "1", "1", "1", "4", "3", "1", "11", "20.0", "27.3"],
        ["Dermatology", "2", "1", "0", "2", "1", "2", "8", "50.0", "12.5"],
        ["Total", "3", "2", "1", "6", "4", "3", "19", "33.3", "21.1"],
    ]
    day = _csv(client.get("/admin/reports/outpatient-volume?" + _q(date_from=START, date_to=END, grain="day",
                                                                   export="by-day")))
    assert day[0][0] == "Day" and len(day) == 1 + 61 + 1
    assert day[2] == ["2026-03-02", "1", "0", "0", "5", "2", "3", "11", "37.5", "18.2"]
    cardio = client.get(base + f"&department={hospital.cardio.id}")
    assert _figures(cardio.text)["Appointments"] == "11"
    assert "Outpatient volume between 2026-03-01 and 2026-04-30 in Cardiology" in cardio.text


def test_exports_are_audited(client, engine, hospital):
    from sqlalchemy import select

    from models import AuditEvent

    login(client, hospital.admin.username)
    client.get("/admin/reports/doctor-workload?" + _q(date_from=START, date_to=END, export="per-doctor"))
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "export")).one()
    assert (event.actor, event.entity, event.entity_id) == (hospital.admin.username, "report", "doctor-workload/per-doctor")
    assert event.changes["rows"] == 2


def test_workload_page_and_csv(client, hospital):
    login(client, hospital.admin.username)
    base = "/admin/reports/doctor-workload?" + _q(date_from=START, date_to=END)
    page = client.get(base)
    assert _figures(page.text) == {"Doctors": "2", "Sessions": "4", "Capacity used": "51.7%", "Completed visits": "6"}
    assert _csv(client.get(base + "&export=per-doctor")) == [
        ["Doctor", "Sessions", "Places", "Booked", "Capacity used", "Completed visits"],
        ["Chief Physician Alice Wang", "2", "15", "8", "53.3", "4"],
        ["Attending Physician Bei Chen", "2", "14", "7", "50.0", "2"],
        ["Total", "4", "29", "15", "51.7", "6"],
    ]


def test_pharmacy_page_and_csv(client, hospital):
    login(client, hospital.admin.username)
    base = "/admin/reports/pharmacy?" + _q(date_from=START, date_to=END)
    page = client.get(base)
    assert _figures(page.text) == {
        "Dispensed value": "38.50", "Units dispensed": "35", "Written off (expiry)": "20.00",
        "Stock value on hand": "570.00",
    }
    assert _csv(client.get(base + "&export=top-medicines")) == [
        ["Medicine", "Unit", "Quantity", "Value (yuan)", "Share of value"],
        ["amoxicillin 500 mg Capsule", "capsule", "15", "22.50", "58.4"],
        ["ibuprofen 400 mg Tablet", "tablet", "20", "16.00", "41.6"],
    ]
    per_day = _csv(client.get(base + "&export=per-day"))
    assert per_day[0] == ["Day", "Quantity", "Value (yuan)"] and len(per_day) == 63
    assert [r for r in per_day[1:] if r[1] != "0"] == [
        ["2026-03-02", "30", "31.00"], ["2026-03-03", "5", "7.50"], ["Total", "35", "38.50"]]
    assert _csv(client.get(base + "&export=write-offs")) == [
        ["Month", "Quantity", "Value (yuan)"], ["2026-03", "30", "15.00"], ["2026-04", "10", "5.00"],
        ["Total", "40", "20.00"]]
    assert _csv(client.get(base + "&export=stock")) == [
        ["Stock", "Batches", "Units", "Value (yuan)"],
        ["Usable (before expiry)", "2", "492", "552.00"],
        ["Past expiry, still active", "1", "36", "18.00"],
        ["All active batches", "3", "528", "570.00"],
    ]


def test_empty_range_says_so(client, hospital):
    login(client, hospital.admin.username)
    rng = _q(date_from="2025-01-01", date_to="2025-01-31")
    page = client.get("/admin/reports/outpatient-volume?" + rng)
    assert page.status_code == 200
    assert "No appointments between 2025-01-01 and 2025-01-31." in page.text and "<svg" not in page.text
    page = client.get("/admin/reports/doctor-workload?" + rng)
    assert "No clinic sessions between 2025-01-01 and 2025-01-31." in page.text and "<svg" not in page.text
    page = client.get("/admin/reports/pharmacy?" + rng)
    assert "Nothing was dispensed between 2025-01-01 and 2025-01-31." in page.text
    assert "No stock was written off for expiry between 2025-01-01 and 2025-01-31." in page.text
    assert "<svg" not in page.text
    # The CSV of an empty range is still a table: its header and zero rows.
    assert _csv(client.get("/admin/reports/outpatient-volume?" + rng + "&export=by-day"))[1:] == (
        [["2025-01-%02d" % d, *["0"] * 7, "", ""] for d in range(1, 32)] + [["Total", *["0"] * 7, "", ""]]
    )
    assert _csv(client.get("/admin/reports/doctor-workload?" + rng + "&export=per-doctor")) == [
        ["Doctor", "Sessions", "Places", "Booked", "Capacity used", "Completed visits"],
        ["Total", "0", "0", "0", "", "0"]]
    assert _csv(client.get("/admin/reports/pharmacy?" + rng + "&export=top-medicines")) == [
        ["Medicine", "Unit", "Quantity", "Value (yuan)", "Share of value"]]


@pytest.mark.parametrize("query", [
    "date_from=2026-02-30", "date_from=2026-03-10&date_to=2026-03-01", "date_from=2020-01-01&date_to=2026-01-01",
    "department=cardiology", "department=424242", "grain=fortnight",
])
def test_bad_filter_input_is_a_400_with_the_form_and_a_message(client, hospital, query):
    login(client, hospital.admin.username)
    for slug in ("outpatient-volume", "doctor-workload", "pharmacy"):
        page = client.get(f"/admin/reports/{slug}?{query}")
        if slug != "outpatient-volume" and query.startswith("grain"):
            assert page.status_code == 200  # only outpatient volume groups; the others ignore grain
            continue
        assert page.status_code == 400, (slug, query)
        assert "The report could not be made from these filters" in page.text
        assert 'class="invalid-feedback"' in page.text
        csv_response = client.get(f"/admin/reports/{slug}?{query}&export=x")
        assert csv_response.status_code == 400


def test_reports_need_a_login(client, hospital):
    page = client.get("/admin/reports/pharmacy")
    assert page.status_code in (302, 303) and "/admin/login" in page.headers["location"]


def test_unknown_export_is_404(client, hospital):
    login(client, hospital.admin.username)
    assert client.get("/admin/reports/pharmacy?" + _q(date_from=START, date_to=END, export="nope")).status_code == 404


def test_local_day_grouping_across_daylight_saving(engine, monkeypatch):
    """In a zone with daylight saving, movements still land on their local day."""
    from zoneinfo import ZoneInfo

    from portal.services._periods import segments

    tz = ZoneInfo("Europe/Berlin")  # clocks go forward on 2026-03-29 and back on 2026-10-25
    segs = segments(date(2026, 3, 27), date(2026, 3, 31), tz)
    assert [(s.offset_minutes, s.day) for s in segs] == [(60, None), (None, date(2026, 3, 29)), (120, None)]
    assert segs[0].utc_start.isoformat() == "2026-03-26T23:00:00+00:00"
    assert segs[-1].utc_end.isoformat() == "2026-03-31T22:00:00+00:00"
    assert [(s.offset_minutes, s.day) for s in segments(date(2026, 6, 1), date(2026, 6, 30), tz)] == [(120, None)]
