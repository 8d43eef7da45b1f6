"""Number formats shared by the dashboard, the reports and their CSV exports.

Screens show grouped thousands (``12,345``), money in yuan with two decimals
(``1,234.50``; amounts are stored in fen) and rates with one decimal (``12.5%``);
CSV cells carry the same figures without grouping so spreadsheets read them as numbers.
"""

from __future__ import annotations

from datetime import date

from jinja2 import Environment

from views._base import money

DASH = "\u2013"


def number(value: int | float | None) -> str:
    """``12,345`` (``–`` for None)."""
    if value is None:
        return DASH
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def yuan(fen: int | None) -> str:
    """An amount in fen as yuan: ``1,234.50`` (``–`` for None)."""
    return DASH if fen is None else money(fen)


def percent(rate: float | None) -> str:
    """A rate 0..1 as ``12.5%`` (``–`` for None: nothing to divide by)."""
    return DASH if rate is None else f"{rate * 100:.1f}%"


def csv_cell(value, kind: str) -> str:
    """A value as a CSV cell for a column of ``kind`` (text, int, money, percent).

    Money becomes yuan with two decimals (``1234.50``), a rate a percentage with one
    decimal (``12.5``), an absent value an empty cell.
    """
    if value is None:
        return ""
    if kind == "money":
        return f"{value / 100:.2f}"
    if kind == "percent":
        return f"{value * 100:.1f}"
    return str(value)


def display(value, kind: str) -> str:
    """A value formatted for the screen for a column of ``kind``."""
    if kind == "int":
        return number(value)
    if kind == "money":
        return yuan(value)
    if kind == "percent":
        return percent(value)
    if kind == "day" and isinstance(value, str) and len(value) == 10:
        try:
            return f"{value} {date.fromisoformat(value):%a}"
        except ValueError:
            return value
    return DASH if value is None else str(value)


def install(env: Environment) -> None:
    """Register the formats as Jinja filters: ``number``, ``yuan``, ``percent``, ``display``."""
    env.filters.update(number=number, yuan=yuan, percent=percent, display=display)
