"""The stock terms are defined once (``portal.services.stock_terms``): the stock service's
lists, the dashboard's tiles and the admin lists those tiles link to agree at every edge
of each definition, and the one ``EXPIRY_WINDOW_DAYS`` setting moves them all."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from models import BatchStatus, StockBatch
from portal.core import clock
from portal.core.db import transaction
from portal.core.settings import get_settings
from portal.services import dashboard, stock
from tests.factories import login, make_batch, make_medicine, make_staff


@pytest.fixture
def shelf(engine):
    """Batches at each edge of "expiring within 30 days" and "past expiry"."""
    today = clock.today()
    med = make_medicine(engine, name="Edge", reorder_level=0)
    batches = {
        days: make_batch(engine, medicine=med, quantity=5, expiry=today + timedelta(days=days))
        for days in (-1, 0, 1, 10, 30, 31)
    }
    empty = make_batch(engine, medicine=med, quantity=5, expiry=today + timedelta(days=5))
    with transaction(engine) as db:  # active, nothing on hand: in no alert
        db.execute(update(StockBatch).where(StockBatch.id == empty.id).values(quantity_on_hand=0))
    return batches


@pytest.fixture
def window(monkeypatch):
    """Set ``EXPIRY_WINDOW_DAYS`` for one test (settings are read once per process)."""

    def set_days(days: int) -> None:
        monkeypatch.setattr(get_settings(), "expiry_window_days", days)

    return set_days


def _ids(batches) -> set[int]:
    return {b.id for b in batches}


def test_expiring_and_past_expiry_edges_agree_in_service_and_dashboard(engine, shelf):
    with transaction(engine, write=False) as db:
        expiring = stock.batches_expiring_within(db)
        past = stock.expired_active_batches(db)
        alerts = dashboard.alerts(db, now=clock.now(), today=clock.today())
    assert _ids(expiring) == {shelf[1].id, shelf[10].id, shelf[30].id}  # (today, today + 30]
    assert _ids(past) == {shelf[-1].id, shelf[0].id}  # expires today: no longer dispensable
    assert (alerts.expiring_soon, alerts.expired_active) == (3, 2)


def test_the_window_setting_moves_the_service_the_tile_and_the_list_together(engine, client, shelf, window):
    window(10)
    with transaction(engine, write=False) as db:
        assert _ids(stock.batches_expiring_within(db)) == {shelf[1].id, shelf[10].id}
    admin = make_staff(engine, username="ada")
    assert login(client, admin.username).status_code == 302
    page = client.get("/admin/").text
    tile = re.search(r'href="([^"]+)">\s*<div class="card-body">\s*<div class="figure-label">Expiring within 10 days'
                     r'</div>\s*<div class="figure-value">(\d+)<', page)
    assert tile, "the tile names the window"
    assert tile.group(2) == "2"
    listed = client.get(tile.group(1).replace("&amp;", "&")).text
    assert re.search(r"of 2 items", listed)


def test_below_reorder_level_counts_only_usable_stock_strictly_below(engine):
    today = clock.today()
    at_level = make_medicine(engine, name="At level", reorder_level=10)
    make_batch(engine, medicine=at_level, quantity=10)
    below = make_medicine(engine, name="Below", reorder_level=10)
    make_batch(engine, medicine=below, quantity=9)
    make_batch(engine, medicine=below, quantity=100, expiry=today)  # expires today: not usable
    quarantined = make_medicine(engine, name="Quarantined", reorder_level=10)
    make_batch(engine, medicine=quarantined, quantity=50, status=BatchStatus.quarantined)
    make_medicine(engine, name="No reorder level", reorder_level=0)
    with transaction(engine, write=False) as db:
        names = {a.medicine.name for a in stock.medicines_below_reorder_level(db)}
        tile = dashboard.alerts(db, now=clock.now(), today=today).below_reorder
    assert names == {"Below", "Quarantined"}
    assert tile == 2
