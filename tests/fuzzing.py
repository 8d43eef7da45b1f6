"""Tools of the bad-input tests (``test_fuzz_*.py``, ``test_bad_input.py``): Hypothesis
settings, values that break things, the forms of a page, and database snapshots.

* :data:`FUZZ` / :func:`fuzz`: the Hypothesis settings of every fuzz test.
  ``FUZZ_PROFILE=ci`` (the default) runs 10-50 examples per test, derandomized (the same
  examples every run, no example database), no deadline; ``FUZZ_PROFILE=deep`` runs ten
  times as many, random, and keeps failing examples in ``.hypothesis/`` (not committed)
  to replay them first next time.
* :func:`forms_on` / :func:`query_values`: the forms of an HTML page (fields, select
  options, hidden tokens) and the query parameters its links offer, so the tests fuzz
  what the page itself offers, and a new field or filter is fuzzed without editing them.
* :func:`form_data`: a strategy for a submitted form: every field junk (:data:`NASTY`,
  random text, numbers, dates), or a believable submission with one to three fields
  changed; :func:`edge_cases`: each field in turn set to the edge values of its kind.
* :class:`Exchanger`: sends a request and checks the answer (:func:`check_answer`: no
  5xx, no traceback, exception name or SQL on the page), that a redirect stays on the
  site, and that a refused request left every row of every table as it was
  (:func:`snapshot`), except what a refused request may write: the rate-limit and
  login-throttle counters (:data:`ALWAYS_WRITTEN`), a failed login's audit event and the
  account's failure counter (:data:`LOGIN_WRITES`), an export's audit event
  (:data:`EXPORT_WRITES`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from sqlalchemy import select
from sqlalchemy.engine import Engine

import models

# -- Hypothesis settings ------------------------------------------------------------------

_HEALTH = [
    HealthCheck.function_scoped_fixture,  # one world per test, shared by its examples on purpose
    HealthCheck.too_slow,  # every example is an HTTP request and a database snapshot
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True, database=None, print_blob=False,
    suppress_health_check=_HEALTH,
)
settings.register_profile(
    "deep", max_examples=200, deadline=None, derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"), suppress_health_check=_HEALTH,
)
PROFILE = os.environ.get("FUZZ_PROFILE", "ci")
#: Multiplier of every test's example count (1 for ``ci``, 10 for ``deep``).
SCALE = 10 if PROFILE == "deep" else 1
FUZZ = settings.get_profile(PROFILE)


def fuzz(examples: int = 20) -> settings:
    """The fuzz settings with ``examples`` examples (times :data:`SCALE`)."""
    return settings(FUZZ, max_examples=examples * SCALE)


# -- nasty values -------------------------------------------------------------------------

#: Values that have broken web forms somewhere: numbers out of every range, dates that
#: do not exist or overflow, words that parsers special-case, markup, SQL, control and
#: invisible characters, non-ASCII digits, very long text.
NASTY: tuple[str, ...] = (
    "", " ", "\t", "0", "-0", "00", "1", "-1", "2", "007", "+5", "1.5", "-1.5", "0.001", "1,5", "1e3", "1e309",
    "-1e309", "nan", "NaN", "inf", "-inf", "Infinity", "0x1F", "1_000", "1 000",
    str(2**31), str(2**31 - 1), str(2**32), str(2**53 + 1), str(2**63 - 1), str(2**63), str(-(2**63) - 1),
    "9" * 30, "-" + "9" * 30, "0." + "0" * 40 + "1", "1" + "0" * 400,
    "１２", "٣", "²", "Ⅻ", "𝟗",
    "None", "none", "null", "NULL", "undefined", "true", "false", "True", "on", "off", "yes", "no", "y", "__all", "all",
    "2026-02-30", "2026-13-01", "2026-00-10", "0000-00-00", "0001-01-01", "1900-01-01", "1970-01-01", "9999-12-31",
    "10000-01-01", "-2026-01-01", "2026-1-1", "20261120", "2026/11/20", "20/11/2026", "2026-11-20T08:00",
    "2026-11-20T08:00:00+14:00", "2026-11-20 25:61", "0001-01-01T00:00:00", "9999-12-31T23:59:59", "24:00", "23:59:60",
    "12:00", "7:5", "25:00", "-01:00", "99:99:99",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{7*7}}", "${7*7}", "%(x)s", "%s%s%n",
    "' OR '1'='1", "1; DROP TABLE patient; --", "%", "_", "%_%", "\\", "\\\\'", "'", '"', "`",
    "\x00", "a\x00b", "\x1b[31m", "\r\n", "\u202e", "\ufeff", "\u200b", "\ud7ff", "😀", "👨‍👩‍👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "ـ", "ｆｕｌｌ", "ÅÅ", "A\u030a", "İ", "ß", "李娜", "김민준", "مرحبا",
    "x" * 41, "x" * 61, "x" * 121, "x" * 256, "x" * 501, "x" * 4000, "y" * 70000,
    "../../etc/passwd", "/admin", "//evil.example", "http://evil.example/", "javascript:alert(1)",
    "1,2,3", ",", ",,,1", "1,a", "1,-1", "-", "+", ".", "..", "e", "E5",
)

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
_int_text = st.integers().map(str)
_small_int_text = st.integers(min_value=-5, max_value=1000).map(str)
_float_text = st.floats(allow_nan=True, allow_infinity=True).map(repr)
_date_text = st.dates().map(date.isoformat)
_datetime_text = st.datetimes().map(datetime.isoformat)
_time_text = st.times().map(time.isoformat)

#: Any value at all: junk and random text of every shape.
junk = st.one_of(
    st.sampled_from(NASTY), _text, _int_text, _small_int_text, _float_text, _date_text, _datetime_text, _time_text,
)

#: Junk that fits in a URL (httpx refuses a query or path part over 64 KiB).
url_junk = junk.filter(lambda v: len(v) < 8000)


def near_dates(today: date) -> st.SearchStrategy[str]:
    """ISO dates around ``today`` (plausible values for date fields)."""
    return st.integers(min_value=-800, max_value=800).map(lambda d: (today + timedelta(days=d)).isoformat())


# -- forms ----------------------------------------------------------------------------------


@dataclass
class FormField:
    """One named control of a form.

    Attributes:
        name (str): the field name.
        kind (str): ``input`` type (``text``, ``number``, ``date``, ``hidden``, ``checkbox``,
            ``submit``...), ``select`` or ``textarea``.
        value (str): the value the page put in it (hidden fields, defaults, the selected option).
        options (list[str]): a select's option values.
        multiple (bool): a select that takes several values.
    """

    name: str
    kind: str
    value: str = ""
    options: list[str] = field(default_factory=list)
    multiple: bool = False


@dataclass
class HtmlForm:
    """A ``<form>`` of a page.

    Attributes:
        action (str): where it goes ("" = the page itself).
        method (str): ``post`` or ``get``.
        fields (dict[str, FormField]): its fields by name (the first of repeated names).
    """

    action: str
    method: str = "post"
    fields: dict[str, FormField] = field(default_factory=dict)

    def defaults(self) -> dict[str, str]:
        """What a browser would send unchanged: values of hidden/text fields, selected options."""
        out = {}
        for f in self.fields.values():
            if f.kind in ("submit", "button", "reset", "file", "image"):
                continue
            if f.kind in ("checkbox", "radio") and not f.value:
                continue
            out[f.name] = f.value
        return out


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._form: HtmlForm | None = None
        self._select: FormField | None = None
        self._textarea: FormField | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = HtmlForm(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
            return
        if self._form is None or not a.get("name"):
            if tag == "option" and self._select is not None:
                self._option(a)
            return
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            checked = "checked" in a
            value = a.get("value", "on" if kind == "checkbox" else "")
            if kind in ("checkbox", "radio"):  # the value is sent only when checked
                choice = self._form.fields.setdefault(name, FormField(name, kind))
                choice.options.append(value)
                if checked:
                    choice.value = value
            else:
                self._form.fields.setdefault(name, FormField(name, kind, value))
        elif tag == "select":
            self._select = FormField(name, "select", multiple="multiple" in a)
            if a.get("data-json"):  # a search picker (select2) shows its chosen row this way
                chosen = json.loads(a["data-json"]) or [{}]
                self._select.value = str(chosen[0].get("id", ""))
            self._form.fields.setdefault(name, self._select)
        elif tag == "textarea":
            self._textarea = FormField(name, "textarea")
            self._form.fields.setdefault(name, self._textarea)

    def _option(self, a: dict[str, str]) -> None:
        value = a.get("value", "")
        self._select.options.append(value)
        if "selected" in a:
            self._select.value = value

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_on(page: str, method: str = "post") -> list[HtmlForm]:
    """The forms of an HTML page that use ``method``, in order."""
    parser = _FormParser()
    parser.feed(page)
    return [f for f in parser.forms if f.method == method]


def query_values(page: str, path: str) -> dict[str, set[str]]:
    """Query parameters the page offers for ``path``: the values in its links to ``path``
    (filter choices, sort columns, page sizes) and the fields and options of its GET forms.

    Returns:
        dict[str, set[str]]: parameter -> values seen (an empty set for a free text field).
    """
    found: dict[str, set[str]] = {}
    for href in re.findall(r'href="([^"]*)"', page):
        parts = urlsplit(unescape(href))
        if parts.path.endswith(path) and parts.query:
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                found.setdefault(name, set()).add(value)
    for form in forms_on(page, "get"):
        for f in form.fields.values():
            found.setdefault(f.name, set()).update(v for v in f.options if v)
    return found


def variants(value: str) -> list[str]:
    """Near misses of a good value: other case, spaces, separators dropped, one character more or less."""
    return [value, value.lower(), value.upper(), f"  {value} ", value.replace("-", ""), value.replace(" ", ""),
            value + "0", value[:-1], value * 2]


def field_values(f: FormField, *, ids: Collection[int | str] = (), today: date | None = None,
                 good: str | None = None) -> st.SearchStrategy:
    """What may be submitted for ``f``: junk, its options, existing ids, dates near today,
    its own value, near misses of a ``good`` value, or several values at once."""
    plausible: list[Any] = [st.just(f.value)]
    if good:
        plausible.append(st.sampled_from(variants(good)))
    if f.options:
        plausible.append(st.sampled_from(f.options))
    if ids:
        plausible.append(st.sampled_from(sorted(str(i) for i in ids)))
    if today is not None:
        plausible.append(near_dates(today))
    one = st.one_of(junk, st.one_of(*plausible))  # half junk, half plausible
    return st.one_of(one, st.lists(one, min_size=2, max_size=3))


#: Marks a field left out of a mutated form.
_DROP = object()


def form_data(form: HtmlForm, *, keep: Collection[str] = (), baseline: Mapping[str, Any] | None = None,
              all_ids: Collection[int | str] = (), today: date | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Submitted data for ``form``, half of the time each way:

    * every field fuzzed or left out (the page's own value, junk, ids, dates);
    * a believable submission (``baseline``: the form's own values, with the given
      values over them) with one to three fields fuzzed or left out, so the junk reaches
      the checks behind the first one.

    The fields named in ``keep`` (CSRF and one-time tokens) are always sent as the page set them.
    """
    fixed = {name: form.fields[name].value for name in keep if name in form.fields}
    base = {**form.defaults(), **(baseline or {}), **fixed}
    values = {name: field_values(f, ids=all_ids, today=today, good=str(base.get(name) or ""))
              for name, f in form.fields.items() if name not in keep}
    everything = st.fixed_dictionaries({k: st.just(v) for k, v in fixed.items()}, optional=values)
    if not values:
        return everything

    def mutate(changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for name, value in changes.items():
            if value is _DROP:
                out.pop(name, None)
            else:
                out[name] = value
        return out

    names = sorted(values)
    mutated = st.lists(st.sampled_from(names), min_size=1, max_size=min(3, len(names)), unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({n: st.one_of(values[n], st.just(_DROP)) for n in chosen})
    ).map(mutate)
    return st.one_of(mutated, everything)


# -- database snapshots ---------------------------------------------------------------------

#: Written by requests whatever their outcome: the rate-limit and login-throttle counters
#: (``portal.services.rate_limits``, ``portal.services.login_throttle``), which count
#: refused attempts by design.
ALWAYS_WRITTEN: dict[str, Collection[str] | None] = {"throttle_bucket": None}
#: What a refused LOGIN also writes: its ``login_failed`` audit event and the account's
#: own failure counter.
LOGIN_WRITES: dict[str, Collection[str] | None] = {
    "audit_event": None, "staff_user": ("failed_logins", "locked_until"),
}
#: What an EXPORT writes (an accepted read): its audit event.
EXPORT_WRITES: dict[str, Collection[str] | None] = {"audit_event": None}

Snapshot = dict[str, list[tuple]]


def snapshot(engine: Engine, allowed: Mapping[str, Collection[str] | None] | None = None) -> Snapshot:
    """Every row of every table, ordered by primary key.

    Args:
        engine (Engine): the database.
        allowed (Mapping[str, Collection[str] | None]): table -> columns left out of the
            snapshot (None: the whole table), on top of :data:`ALWAYS_WRITTEN`.

    Returns:
        Snapshot: table name -> rows (tuples of the kept columns).
    """
    skip = {**ALWAYS_WRITTEN, **(allowed or {})}
    out: Snapshot = {}
    with engine.connect() as conn:
        for table in models.metadata.sorted_tables:
            if table.name in skip and skip[table.name] is None:
                continue
            left_out = skip.get(table.name) or ()
            columns = [c for c in table.columns if c.name not in left_out]
            rows = conn.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
        conn.rollback()
    return out


def assert_unchanged(before: Snapshot, after: Snapshot, what: str) -> None:
    """Fail, naming the tables and rows, when ``after`` differs from ``before``."""
    changed = []
    for name in before:
        if before[name] != after[name]:
            old, new = {repr(r) for r in before[name]}, {repr(r) for r in after[name]}
            changed.append(f"{name}: -{sorted(old - new)[:3]} +{sorted(new - old)[:3]}")
    assert not changed, f"{what} changed the database: " + "; ".join(changed)


# -- answers --------------------------------------------------------------------------------

_LEAKS = re.compile(
    r"Traceback \(most recent call last\)|\[SQL: |sqlalche\.me/e/|pymysql\.err|sqlite3\.\w+Error|"
    r"IntegrityError|OperationalError|DataError|ProgrammingError|StatementError|OverflowError|"
    r"ValueError\(|TypeError\(|LookupError|KeyError|AttributeError|invalid literal for int\(\)|"
    r"because of an unexpected error|"  # a workflow action's row that failed with a bug
    r"Python int too large|to SQLite INTEGER"
)


def check_answer(response, what: str) -> None:
    """Every answer to bad input: below 500, and no traceback, exception name or SQL in it."""
    assert response.status_code < 500, f"{what}: {response.status_code}\n{_excerpt(response.text)}"
    leak = _LEAKS.search(response.text)
    assert leak is None, (
        f"{what}: the answer shows an internal error ({leak.group(0)!r}):\n{_excerpt(response.text, leak.start())}")


def _excerpt(text: str, at: int = 0) -> str:
    start = max(0, at - 300)
    return re.sub(r"\s+", " ", text[start:at + 600])


def is_redirect(response) -> bool:
    """A 3xx answer (the request was accepted)."""
    return 300 <= response.status_code < 400


def is_local(location: str) -> bool:
    """True for a redirect target on this site (a path, or the test client's own host)."""
    parts = urlsplit(location)
    return (not parts.scheme and not parts.netloc and location.startswith("/") and not location.startswith("//")) or (
        parts.scheme == "http" and parts.netloc == "testserver")


class Exchanger:
    """Sends requests to the app and checks each against the rules of bad input.

    * the answer is below 500 and shows no internal error (:func:`check_answer`);
    * a redirect goes to this site, and the page it leads to obeys the same rule;
    * the database is unchanged unless the request was accepted: ``may_write`` and a
      redirect (or ``refused(response)`` false, when given), ``allowed`` tables aside.

    One per test: the snapshot taken after a request is the "before" of the next one
    (the test must call :meth:`forget` if it writes to the database itself, other than
    to tables every snapshot leaves out).

    Args:
        client: the test client.
        engine (Engine): the database.
    """

    def __init__(self, client, engine: Engine) -> None:
        self.client = client
        self.engine = engine
        self._last: tuple[Any, Snapshot] | None = None

    def forget(self) -> None:
        """Take a fresh snapshot before the next request."""
        self._last = None

    def __call__(self, method: str, url: str, *, what: str, may_write: bool = False,
                 allowed: Mapping[str, Collection[str] | None] | None = None, refused=None, **kwargs: Any):
        """Send one request and check it.

        Args:
            method (str): HTTP method.
            url (str): the path and query.
            what (str): names the request in failure messages.
            may_write (bool): an accepted answer may change the database.
            allowed: extra tables/columns a refused request may write (see :func:`snapshot`).
            refused (Callable | None): decides from the response whether the request was refused.
            **kwargs: passed to ``client.request`` (``data``, ``params``, ``content``, ``headers``).

        Returns:
            the response.
        """
        key = repr(sorted((allowed or {}).items()))
        if self._last is not None and self._last[0] == key:
            before = self._last[1]
        else:
            before = snapshot(self.engine, allowed)
        self._last = None
        response = self.client.request(method, url, **kwargs)
        label = f"{what}: {method} {url} {kwargs.get('params') or ''} {_short(kwargs.get('data'))}"
        check_answer(response, label)
        if is_redirect(response):
            location = response.headers.get("location", "")
            assert is_local(location), f"{label}: redirects off the site to {location!r}"
            check_answer(self.client.get(location), f"{label}, then GET {location}")
        after = snapshot(self.engine, allowed)
        accepted = (refused is None and is_redirect(response)) or (refused is not None and not refused(response))
        if not (may_write and accepted):
            assert_unchanged(before, after, label)
        self._last = (key, after)
        return response


def exchange(client, engine: Engine, method: str, url: str, **kwargs: Any):
    """Send one request and check it (:class:`Exchanger`, without a remembered snapshot)."""
    return Exchanger(client, engine)(method, url, **kwargs)


#: Per kind of field, values that broke forms here: numbers past an INTEGER column, past
#: 64 bits or past a float (WTForms' NumberRange), a non-finite decimal, a digit that
#: str.isdigit() accepts but int() does not; dates at the ends of the calendar or that
#: do not exist; text past a column, a NUL.
NUMBER_EDGES = ("9" * 30, str(2**31), str(-(2**31) - 1), "1" + "0" * 400, "1e309", "NaN", "\u00b2")
DATE_EDGES = ("0001-01-01", "9999-12-31", "2026-02-30", "25:00")
TEXT_EDGES = ("x" * 300, "\x00", "y" * 70000)
_NUMBER_LIKE = re.compile(r"-?\d+(\.\d+)?")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")


def edge_cases(form: HtmlForm, *, keep: Collection[str] = (), baseline: Mapping[str, Any] | None = None):
    """Every field of ``form`` in turn set to each edge value of its kind, the others as
    in ``baseline`` (or the page's own values): ``(field name, data)`` pairs.

    A field's kind is read from the page: ``type="number"``, a select of ids or a search
    picker, or digits as its value make a number; ``type="date"``/``"time"`` or a
    date-looking value a date; anything else text.
    """
    base = {**form.defaults(), **(baseline or {})}
    for name, f in form.fields.items():
        if name in keep or f.kind in ("submit", "button", "reset", "checkbox", "radio"):
            continue
        value = str(base.get(name) or "")
        if f.kind in ("number", "hidden") or (f.kind == "select" and all(o.isdigit() for o in f.options if o)) \
                or _NUMBER_LIKE.fullmatch(value):
            edges = NUMBER_EDGES
        elif f.kind in ("date", "time", "datetime-local") or _DATE_LIKE.fullmatch(value):
            edges = DATE_EDGES
        else:
            edges = TEXT_EDGES
        for edge in edges:
            yield name, {**base, name: edge}


def _short(data: Any) -> str:
    text = repr(data) if data else ""
    return text if len(text) < 2000 else text[:2000] + "..."
