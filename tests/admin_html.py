"""Read sqladmin pages the way a person does: table rows, alerts, field errors.

Only the standard library's ``html.parser``, so the tests need nothing extra. Every
helper collapses whitespace, so assertions compare the text a user would see.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


class _Collector(HTMLParser):
    """Collects the text of tbody rows/cells, danger alerts and invalid-feedback divs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.alerts: list[str] = []
        self.field_errors: list[str] = []
        self._in_tbody = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._div_stack: list[str | None] = []
        self._capture: list[str] | None = None
        self._capture_kind: str | None = None
        self._capture_depth = 0

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tbody":
            self._in_tbody += 1
        elif tag == "tr" and self._in_tbody:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        if tag == "div":
            kind = None
            if self._capture is None and "alert-danger" in classes:
                kind = "alert"
            elif self._capture is None and "invalid-feedback" in classes:
                kind = "field"
            if kind:
                self._capture, self._capture_kind, self._capture_depth = [], kind, 0
            elif self._capture is not None:
                self._capture_depth += 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_tbody -= 1
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(_clean("".join(self._cell)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag == "div" and self._capture is not None:
            if self._capture_depth:
                self._capture_depth -= 1
            else:
                text = _clean("".join(self._capture))
                (self.alerts if self._capture_kind == "alert" else self.field_errors).append(text)
                self._capture = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._capture is not None:
            self._capture.append(data)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def table_rows(html: str) -> list[list[str]]:
    """Cells (text) of every body row of the tables on the page, in order."""
    return _parse(html).rows


def row_texts(html: str) -> list[str]:
    """Each body row of the page's tables as one line of text."""
    return [" | ".join(cells) for cells in table_rows(html)]


def alerts(html: str) -> list[str]:
    """Text of every red alert box on the page (sqladmin shows form errors there)."""
    return _parse(html).alerts


def field_errors(html: str) -> list[str]:
    """Text of every per-field error message under a form input."""
    return _parse(html).field_errors


def detail_fields(html: str) -> dict[str, str]:
    """A details page as ``{label: value}``."""
    return {cells[0]: cells[1] for cells in table_rows(html) if len(cells) == 2}


_TOKEN_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"|<meta name="csrf-token" content="([^"]+)"')


def csrf_token_of(html: str) -> str:
    """The CSRF token a rendered admin page carries, as a browser finds it: the form's hidden
    ``csrf_token`` field, else the ``<meta name="csrf-token">`` sqladmin's JavaScript reads.

    Raises:
        AssertionError: the page carries no token.
    """
    match = _TOKEN_INPUT.search(html)
    assert match, "the page carries no CSRF token"
    return match.group(1) or match.group(2)
