"""Bulk loading of generated rows: ``LOAD DATA LOCAL INFILE`` on MySQL/MariaDB.

Seeding a large hospital (a million appointments) through ``INSERT`` statements spends
nearly all its time in Python, escaping every value (measured with py-spy: PyMySQL's
``escape_item`` and SQLAlchemy's bind processing, about 90 % of the run, the server idle).
:func:`load_rows` instead writes the rows as one tab-separated file and has the server
read it with ``LOAD DATA LOCAL INFILE`` on a connection of its own (the portal's pooled
connections never get the local-file capability). Values are written as MariaDB reads
them back: ``\\N`` for NULL, ``1``/``0`` for booleans, UTC datetimes without a zone
(as :class:`models._types.UTCDateTime` stores them), dates and times in ISO form, enums
by value, JSON as text; tab, newline, carriage return and backslash are escaped.

The file goes to the server in one statement within one transaction, so a failed load
writes nothing. The load runs with ``unique_checks`` and ``foreign_key_checks`` off, which
lets InnoDB build the indexes of the (empty) table by sorting at COMMIT: a duplicate key
still fails the load, but references between the seed's rows are not checked by the
server (the seed builds them; ``tests/test_seed.py`` compares this path with plain
INSERTs). :func:`can_load` tells whether a table and its rows can take this path.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Engine

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _text(value: Any) -> str:
    """One field of the file (see the module docstring for the forms)."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column: attach a time zone")
        return str(value.astimezone(UTC).replace(tzinfo=None))
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _text(value.value)
    if isinstance(value, (dict, list)):
        return json.dumps(value).translate(_ESCAPES)
    raise TypeError(f"cannot bulk-load a value of type {type(value).__name__}")


def can_load(engine: Engine, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """True when ``rows`` of ``table`` can go through :func:`load_rows` on ``engine``.

    That is: the database is MySQL/MariaDB through PyMySQL, and every column the rows
    leave out has no default computed in Python (the server would not know it).
    """
    if engine.dialect.name not in ("mysql", "mariadb") or engine.dialect.driver != "pymysql" or not rows:
        return False
    given = rows[0].keys()
    return all(c.name in given or c.default is None for c in table.columns)


def load_rows(engine: Engine, table: Table, rows: Sequence[dict[str, Any]],
              progress: Callable[[str], None] = lambda _m: None) -> int:
    """Write ``rows`` into ``table`` with one ``LOAD DATA LOCAL INFILE``, in one transaction.

    Args:
        engine (Engine): a MySQL/MariaDB engine using PyMySQL.
        table (Table): the target table.
        rows (Sequence[dict[str, Any]]): rows as column name -> value, all with the keys of
            the first row (the columns loaded).
        progress (Callable[[str], None]): receives a line when the file is written.

    Returns:
        int: rows the server reports as loaded.

    Raises:
        ValueError: a row lacks a column of the first row, or a datetime has no zone.
        pymysql.err.MySQLError: the server refused the load (a constraint, a bad value,
            local files not allowed); nothing is written.
    """
    import pymysql

    columns = list(rows[0].keys())
    fd, path = tempfile.mkstemp(prefix=f"seed-{table.name}-", suffix=".tsv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                try:
                    fh.write("\t".join([_text(row[c]) for c in columns]))
                except KeyError as exc:
                    raise ValueError(f"a row of {table.name} has no {exc.args[0]}") from None
                fh.write("\n")
        if len(rows) > 100_000:
            progress(f"  {table.name}: {len(rows):,} rows written to a file; loading...")
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("client_flag", None)
        kwargs.update(local_infile=True, charset="utf8mb4", autocommit=False)
        conn = pymysql.connect(**kwargs)
        try:
            with conn.cursor() as cur:
                # Into an empty table, with these two checks off, InnoDB sorts the rows and builds
                # each index once at COMMIT instead of inserting into every index row by row
                # (MariaDB 10.6+, MDEV-24621): minutes become seconds for a million rows. A
                # duplicate key still fails the COMMIT; the rows' references are the seed's own.
                cur.execute("SET time_zone = '+00:00', unique_checks = 0, foreign_key_checks = 0")
                loaded = cur.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
                    "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                    f"({', '.join(f'`{c}`' for c in columns)})",
                    (path,),
                )
                # With LOCAL the server turns duplicate keys and bad values into warnings and
                # skips or mangles the row: any warning, or a row missing, undoes the load.
                if cur.execute("SHOW WARNINGS") or loaded != len(rows):
                    problems = cur.fetchall()[:3]
                    raise pymysql.err.DataError(
                        f"LOAD DATA into {table.name} loaded {loaded:,} of {len(rows):,} rows: {problems}")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return loaded
    finally:
        os.unlink(path)
