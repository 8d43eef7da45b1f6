"""The portal's own code in a benchmark process: settings and an engine on the bench database.

The race scenarios set their data up and check it afterwards through the portal's services
and models, which read :func:`portal.core.settings.get_settings` (time zone, secret key). This
gives them the same settings as the servers the harness starts on that database.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import Engine

from bench.harness import BenchDatabase


def portal_engine(db: BenchDatabase, *, pool_size: int = 5) -> Engine:
    """An engine on ``db`` built by :func:`portal.core.db.build_engine`, with the servers' settings.

    Sets ``DATABASE_URL``, ``SECRET_KEY`` and ``PORTAL_DEMO_PASSWORD`` of the bench servers in
    this process's environment and clears the cached settings, so services see them.

    Args:
        db (BenchDatabase): the benchmark database.
        pool_size (int): pooled connections (the set-up and checks need few).

    Returns:
        Engine: dispose of it when done.
    """
    from portal.core.db import build_engine
    from portal.core.settings import get_settings

    os.environ.update(db.env())
    get_settings.cache_clear()
    return build_engine(db.url, pool_size=pool_size)
