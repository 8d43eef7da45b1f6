"""The patient pages: find a department and doctor, book, look a booking up and cancel it.

Server-rendered Jinja pages, no JavaScript. Every POST carries a CSRF token (double
submit against the ``portal_csrf`` cookie) and is answered with a redirect on success
(POST/redirect/GET). Booking forms also carry a one-time submission token, used as the
appointment's ``submission_key``, so a repeated POST books once. Lookups and bookings
are rate-limited per client address with counters in the database
(:mod:`portal.services.rate_limits`). Business rules live in :mod:`portal.services.booking`,
:mod:`portal.services.appointments` and :mod:`portal.services.timetable`; this module
only validates input, calls them and turns their errors into friendly pages.

Pages (all in Simplified Chinese and English):

=========================  =========================================================
``GET /``                  active departments, searchable (``?q=``), with free sessions
``GET /departments/{code}`` its doctors and a 14-day timetable of their sessions
``GET|POST /book/{id}``    the booking form; success redirects to the confirmation
``GET /booked/{token}``    confirmation (signed link: shows one booking)
``GET|POST /booking``      "My booking": reference + phone
``GET /booking/{token}``   the booking and its status; cancel form while allowed
``POST /booking/{token}/cancel``  cancel (until the session starts)
``GET /language/{code}``   remember the language (cookie) and go back
=========================  =========================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from models import Gender
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import (
    Busy,
    ClinicSessionNotBookable,
    DomainError,
    DuplicateBooking,
    InvalidTransition,
    NotFound,
    SlotFull,
    ValidationFailed,
)
from portal.core.settings import get_settings
from portal.patient_pages import i18n
from portal.patient_pages.forms import N_, BookingForm, LookupForm, Message, clean_cancel_reason
from portal.patient_pages.page_cache import PageCache, Rendered, VersionWatch
from portal.services import appointments, booking, rate_limits, timetable
from portal.web import tokens
from portal.web.faults import unavailable_cause

log = logging.getLogger(__name__)
T = TypeVar("T")

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

#: Window of the per-address limits; how many lookups ("My booking" form) and booking
#: submissions (that pass validation) an address may make in it is set by the settings
#: ``LOOKUP_RATE_LIMIT`` (10) and ``BOOKING_RATE_LIMIT`` (5).
LOOKUP_WINDOW_SECONDS = 60
BOOKING_WINDOW_SECONDS = 60

CSRF_COOKIE = "portal_csrf"
CSRF_COOKIE_MAX_AGE = 7 * 24 * 3600
CSRF_FIELD = "csrf_token"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
#: Signed links to a booking (confirmation and "My booking") stay valid this long.
VIEW_PURPOSE = "booking.view"
VIEW_MAX_AGE = 90 * 24 * 3600
SUBMISSION_PURPOSE = "booking.submission"
SUBMISSION_MAX_AGE = 24 * 3600
ONLINE_ACTOR = "patient:online"
#: Bumped when the stylesheet changes, so phones do not keep a stale copy.
STATIC_VERSION = "2"


# -- rendering --------------------------------------------------------------------


@lru_cache(maxsize=None)
def environment(locale: str) -> Environment:
    """The Jinja environment of ``locale``: autoescaping on, gettext of that language installed.

    One environment per language (they are shared by all threads, so no per-request
    state is ever installed on them).

    Args:
        locale (str): a key of :data:`portal.patient_pages.i18n.LOCALES`.

    Returns:
        Environment: with ``_``, ``gettext`` and ``ngettext`` (new-style: ``%(name)s``
        placeholders filled from keyword arguments and escaped).
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)
    return env


def client_ip(request: Request) -> str:
    """The client's address as seen by this process (behind a reverse proxy, the one it
    names in ``X-Forwarded-For`` when the setting ``FORWARDED_ALLOW_IPS`` trusts it)."""
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    """A local path to go back to (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:500]


@dataclass
class Page:
    """One request's rendering context: language, formatter and CSRF cookie.

    Attributes:
        request (Request): the request.
        locale (str): the page language.
        fmt (i18n.Formatter): formats dates, times, money and standard names.
        csrf_value (str): this browser's CSRF cookie value.
        csrf_is_new (bool): the cookie must be set on the response.
    """

    request: Request
    locale: str
    fmt: i18n.Formatter
    csrf_value: str
    csrf_is_new: bool

    @classmethod
    def of(cls, request: Request, *, csrf: bool = True) -> "Page":
        """Build the context from the request's cookies and headers.

        Args:
            request (Request): the request.
            csrf (bool): make a CSRF cookie value when the browser has none (False for the
                shared pages, which neither show nor set one).
        """
        locale = i18n.choose_locale(request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language"))
        value = request.cookies.get(CSRF_COOKIE) or ""
        fresh = csrf and not (16 <= len(value) <= 64)
        return cls(request, locale, i18n.Formatter(locale), tokens.new_csrf_cookie_value() if fresh else value, fresh)

    def gettext(self, message: str | Message, **params: Any) -> str:
        """Translate a message id (or :class:`Message`) and fill its placeholders."""
        if isinstance(message, Message):
            params = {**message.params, **params}
            message = message.text
        text = i18n.translations(self.locale).gettext(message)
        return text % params if params else text

    def csrf_ok(self, data: dict[str, str]) -> bool:
        """True when the submitted form's CSRF token matches this browser's cookie."""
        return not self.csrf_is_new and tokens.csrf_valid(self.csrf_value, data.get(CSRF_FIELD))

    def html(self, template: str, *, here: str | None = None, shared: bool = False, **context: Any) -> str:
        """Render ``template`` in the page language, as text.

        Args:
            template (str): file under ``templates/``.
            here (str | None): the path (and query) the language switch comes back to; the
                request's when omitted.
            shared (bool): the page is rendered for every visitor (:mod:`portal.patient_pages.page_cache`):
                no CSRF token is offered, so a template that would put one in fails instead.
            **context: template variables.

        Returns:
            str: the HTML.
        """
        request = self.request
        if here is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        other = next(loc for loc in i18n.LOCALES if loc != self.locale)
        settings = get_settings()
        context.setdefault("active", None)
        if not shared:
            context["csrf_token"] = tokens.csrf_token(self.csrf_value)
        return environment(self.locale).get_template(template).render(
            fmt=self.fmt,
            html_lang=i18n.HTML_LANG[self.locale],
            locale=self.locale,
            hospital=self.fmt.data(settings.hospital_name),
            switch={"label": i18n.LOCALES[other], "lang": i18n.HTML_LANG[other],
                    "href": f"/language/{i18n.cookie_code(other)}?next={quote(_safe_next(here), safe='')}"},
            msg=self.gettext,
            static_version=STATIC_VERSION,
            **context,
        )

    def respond(self, html: str | bytes, *, status: int = 200, headers: dict[str, str] | None = None,
                private: bool = False, csrf_cookie: bool = True) -> HTMLResponse:
        """The response carrying ``html``, with the page's headers and the CSRF cookie when new.

        Args:
            html (str | bytes): the page (bytes: already encoded as UTF-8).
            status (int): HTTP status.
            headers (dict[str, str] | None): extra response headers.
            private (bool): the page shows personal data: ``Cache-Control: no-store`` (always so
                for answers to a POST, which show what the patient typed).
            csrf_cookie (bool): set the CSRF cookie when the browser has none (False for the
                shared pages, which have no form that needs it: the booking form sets it).

        Returns:
            HTMLResponse: the page, setting the CSRF cookie when the browser had none.
        """
        response = HTMLResponse(html, status_code=status, headers=headers)
        if private or self.request.method == "POST":
            response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Language"] = i18n.HTML_LANG[self.locale]
        response.headers["Vary"] = "Cookie, Accept-Language"
        if self.csrf_is_new and csrf_cookie:
            response.set_cookie(CSRF_COOKIE, self.csrf_value, max_age=CSRF_COOKIE_MAX_AGE, path="/",
                                httponly=True, samesite="strict",
                                secure=get_settings().secure_cookies or self.request.url.scheme == "https")
        return response

    def render(self, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
               private: bool = False, **context: Any) -> HTMLResponse:
        """Render ``template`` in the page language (see :meth:`html` and :meth:`respond`).

        Args:
            template (str): file under ``templates/``.
            status (int): HTTP status.
            headers (dict[str, str] | None): extra response headers.
            private (bool): the page shows personal data: ``Cache-Control: no-store``.
            **context: template variables.

        Returns:
            HTMLResponse: the page, setting the CSRF cookie when the browser had none.
        """
        return self.respond(self.html(template, **context), status=status, headers=headers, private=private)

    def message(self, title: str, text: str | Message, *, status: int, headers: dict[str, str] | None = None,
                links: tuple[tuple[str, str], ...] = ()) -> HTMLResponse:
        """A page with a heading, one explanation and links onward (message ids, translated here)."""
        return self.render("message.html", status=status, headers=headers, title=self.gettext(title),
                           text=self.gettext(text),
                           links=[(href, self.gettext(label)) for href, label in links])

    def not_found(self) -> HTMLResponse:
        """The friendly 404 page."""
        return self.message(N_("Page not found"),
                            N_("We could not find this page. It may have moved, or the address may be mistyped."),
                            status=404, links=(("/", N_("Find a doctor")), ("/booking", N_("My booking"))))

    def forbidden(self) -> HTMLResponse:
        """The 403 page of a POST without a valid CSRF token."""
        return self.message(
            N_("This form has expired"),
            N_("For your security, forms work only for a limited time and only on this website. "
               "Nothing was saved. Please go back, reload the page and try again."),
            status=403, links=(("/", N_("Find a doctor")), ("/booking", N_("My booking"))))

    def too_many(self, retry_after: int) -> HTMLResponse:
        """The 429 page, with ``Retry-After`` in seconds."""
        return self.message(
            N_("Please wait a moment"),
            Message(N_("There have been too many attempts from your connection. "
                       "Please try again in about %(seconds)d seconds."), {"seconds": retry_after}),
            status=429, headers={"Retry-After": str(retry_after)}, links=(("/", N_("Find a doctor")),))

    def busy(self) -> HTMLResponse:
        """The 503 page when the database stays locked or is unreachable."""
        return self.message(
            N_("We are very busy"),
            N_("We could not complete your request just now, and nothing was saved. "
               "Please try again in a moment."),
            status=503, headers={"Retry-After": "5"}, links=(("/", N_("Find a doctor")),))

    def unreadable(self) -> HTMLResponse:
        """The 400 page of a POST whose body is not a form of ours (nothing was read or saved)."""
        return self.message(
            N_("We could not do this"), N_("Some details could not be accepted. Please check them and try again."),
            status=400, links=(("/", N_("Find a doctor")), ("/booking", N_("My booking"))))

    def link_expired(self) -> HTMLResponse:
        """The page of a signed booking link that is invalid or too old."""
        return self.message(
            N_("This link no longer works"),
            N_("The link may be incomplete or too old. Look your booking up with its reference "
               "and your phone number."),
            status=404, links=(("/booking", N_("My booking")),))


class PatientRoute(APIRoute):
    """A route whose errors become friendly pages: never a traceback, never a bare 500.

    ``Busy`` and database outages (a pool with no connection free in time included) give
    the 503 page; other domain errors a 409 page with a
    neutral sentence; malformed requests the 404 page; anything unexpected is logged and
    answered with a plain apology (500).
    """

    def get_route_handler(self) -> Callable:
        """FastAPI's handler for this route, wrapped so every error becomes a patient page.

        Returns:
            Callable: ``async (Request) -> Response``.
        """
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Busy:
                return Page.of(request).busy()
            except DBAPIError:
                log.exception("database error on %s", request.url.path)
                return Page.of(request).busy()
            except RequestValidationError:
                return Page.of(request).not_found()
            except DomainError as exc:
                log.info("refused on %s: %s", request.url.path, exc.message)
                return Page.of(request).message(
                    N_("We could not do this"),
                    N_("Nothing was changed. Please try again, or contact the front desk."),
                    status=409, links=(("/", N_("Find a doctor")),))
            except Exception as exc:
                if unavailable_cause(exc) is not None:  # e.g. no pooled connection free in time
                    log.warning("database unavailable on %s: %s", request.url.path, exc)
                    return Page.of(request).busy()
                log.exception("unexpected error on %s", request.url.path)
                return Page.of(request).message(
                    N_("Something went wrong"),
                    N_("Sorry, something went wrong on our side and nothing was saved. Please try again later."),
                    status=500, links=(("/", N_("Find a doctor")),))

        return guarded


router = APIRouter(route_class=PatientRoute, include_in_schema=False)


def _read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with transaction(request.app.state.engine, write=False) as db:
        return fn(db, *args, **kwargs)


def _write(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return run_in_transaction(fn, *args, engine=request.app.state.engine, **kwargs)


def _limit(request: Request, what: str, limit: int, window: int) -> int:
    """Count one hit of ``what`` for the client; returns 0, or seconds to wait when over."""
    allowed, retry_after = _write(request, rate_limits.hit, f"{what}-ip:{client_ip(request)}",
                                  limit=limit, window_seconds=window, now=clock.now())
    return 0 if allowed else retry_after


async def _form(request: Request) -> dict[str, str] | None:
    """The submitted form fields as text (repeated fields: the last one), or None when the
    body cannot be read as one of our forms: malformed, a file, over 50 fields or a field
    over 64 KiB (:meth:`Page.unreadable` answers it)."""
    try:
        form = await request.form(max_files=0, max_fields=50, max_part_size=64 * 1024)
    except Exception:
        return None
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _checked_post(request: Request, handler: Callable[..., Response], *args: Any) -> Response:
    """Read a posted form and check its CSRF token, then run ``handler(request, page, *args,
    data)`` in the thread pool (it uses the database).

    Returns:
        Response: the handler's answer; 400 (:meth:`Page.unreadable`) for a body that is not
        one of our forms, 403 (:meth:`Page.forbidden`) for a missing or wrong CSRF token.
    """
    data = await _form(request)
    page = Page.of(request)
    if data is None:
        return page.unreadable()
    if not page.csrf_ok(data):
        return page.forbidden()
    return await run_in_threadpool(handler, request, page, *args, data)


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


def view_link(appointment_id: int, *, confirmation: bool = False) -> str:
    """The signed link to a booking's page (``/booked/...`` right after booking, else ``/booking/...``)."""
    token = tokens.sign(appointment_id, purpose=VIEW_PURPOSE)
    return f"/booked/{token}" if confirmation else f"/booking/{token}"


def _appointment_from(token: str) -> int | None:
    value = tokens.unsign(token, purpose=VIEW_PURPOSE, max_age=VIEW_MAX_AGE)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- finding a doctor ---------------------------------------------------------------


def page_cache(request: Request) -> PageCache:
    """The rendered pages of this app (one store per application)."""
    return request.app.state.page_cache


def version_watch(request: Request) -> VersionWatch:
    """The catalog version reader of this app."""
    return request.app.state.version_watch


async def _cached(request: Request, page: Page, key: tuple, stamp_of: Callable[[Rendered], Any],
                  render: Callable[[], Rendered | None]) -> Rendered | None:
    """The page for ``key`` from memory if still valid, else rendered once (in the thread pool) and kept.

    ``stamp_of`` gives a stored page's current stamp from the catalog versions, which are read
    (freshly) before anything else, so a page rendered now is at least as new as its stamp.
    Returns None when ``render`` does (nothing is kept then).
    """
    versions = await version_watch(request).current()
    cache = page_cache(request)
    found = cache.get(key, lambda entry: stamp_of(entry, versions), clock.now())
    if found is not None:
        return found
    rendered = await cache.render_once(key, _all_versions(versions),
                                       lambda: run_in_threadpool(render, versions))
    if rendered is not None:
        cache.put(key, rendered)
    return rendered


def _all_versions(versions: Mapping[int, int]) -> tuple:
    return tuple(sorted(versions.items()))


@router.get("/")
async def departments(request: Request) -> Response:
    """The home page: active departments (filtered by ``?q=``) with their free sessions.

    Without a search, served from :mod:`portal.patient_pages.page_cache` while the catalog versions
    and the counts' time bound hold. (Parameters are read from the request, not declared:
    FastAPI's parameter machinery is a tenth of a cached page's cost.)
    """
    query = " ".join(request.query_params.get("q", "").split())[: timetable.MAX_QUERY_LENGTH]
    if query:
        return await run_in_threadpool(_search_page, request, Page.of(request), query)
    page = Page.of(request, csrf=False)

    def render(versions: Mapping[int, int]) -> Rendered:
        listing = _read(request, timetable.department_listing, now=clock.now())
        html = page.html("departments.html", here="/", shared=True, departments=listing.rows, q="",
                         days=timetable.HORIZON_DAYS)
        return Rendered(html.encode(), _all_versions(versions), listing.valid_until)

    rendered = await _cached(request, page, ("home", page.locale), lambda _e, v: _all_versions(v), render)
    return page.respond(rendered.html, csrf_cookie=False)


def _search_page(request: Request, page: Page, query: str) -> Response:
    rows = _read(request, timetable.departments_with_open_sessions, query=query,
                 also_names=page.fmt.data_matches(query), now=clock.now())
    return page.render("departments.html", departments=rows, q=query, days=timetable.HORIZON_DAYS)


@router.get("/departments/{code}")
async def department(request: Request) -> Response:
    """One page of a department's doctors and their sessions in the next 14 days (404 page if unknown).

    ``?page=N`` chooses the page of doctors (:data:`portal.services.timetable.DOCTORS_PER_PAGE`
    each). Served from :mod:`portal.patient_pages.page_cache` while the department's catalog version
    and the page's time bound hold.
    """
    page = Page.of(request, csrf=False)
    raw_number = request.query_params.get("page", "1")
    number = _int(raw_number)
    if not number:
        return page.not_found()
    canonical = request.path_params["code"].strip().upper()[:16]
    here = f"/departments/{quote(canonical)}" + (f"?page={number}" if number > 1 else "")

    def render(versions: Mapping[int, int]) -> Rendered | None:
        found = _read(request, timetable.department_timetable, canonical, now=clock.now(), page=number)
        if found is None:
            return None
        html = page.html("department.html", here=here, shared=True, tt=found, days=timetable.HORIZON_DAYS,
                         S=timetable.SessionState)
        return Rendered(html.encode(), versions.get(found.department.id), found.valid_until, found.department.id)

    rendered = await _cached(request, page, ("department", page.locale, canonical, number),
                             lambda entry, v: v.get(entry.department_id), render)
    if rendered is None:
        return page.not_found()
    return page.respond(rendered.html, csrf_cookie=False)


# -- booking --------------------------------------------------------------------------


def _unavailable(request: Request, page: Page, context: timetable.BookableSession, *, reason: str,
                 raw: dict[str, str] | None = None, options: tuple[list, list] | None = None) -> Response:
    same, others = options or _read(request, timetable.alternatives, context.clinic_session, now=clock.now())
    return page.render("unavailable.html", status=409, ctx=context, reason=reason, same=same, others=others,
                       carry={k: v for k, v in (raw or {}).items() if v})


def _booking_page(page: Page, context: timetable.BookableSession, form: BookingForm, *, submission: str,
                  status: int = 200, problem: str | None = None) -> Response:
    return page.render("book.html", status=status, ctx=context, form=form, submission=submission,
                       problem=problem, genders=[g.value for g in (Gender.female, Gender.male, Gender.other,
                                                                   Gender.unknown)])


@router.get("/book/{clinic_session_id}")
def booking_form(request: Request, clinic_session_id: str) -> Response:
    """The booking form of a session, or the "not bookable" page with other sessions."""
    page = Page.of(request)
    sid = _int(clinic_session_id)
    context = _read(request, timetable.session_with_context, sid, now=clock.now()) if sid else None
    if context is None:
        return page.not_found()
    if context.state is not timetable.SessionState.bookable:
        return _unavailable(request, page, context, reason=context.state.value)
    token = tokens.new_submission_token(str(sid), purpose=SUBMISSION_PURPOSE)
    return _booking_page(page, context, BookingForm.empty(), submission=token)


@router.post("/book/{clinic_session_id}")
async def submit_booking(request: Request, clinic_session_id: str) -> Response:
    """Book a place: CSRF, validation, rate limit, then the service; redirects to the confirmation."""
    return await _checked_post(request, _submit_booking, clinic_session_id)


@dataclass
class _Submission:
    """What one read transaction finds for a booking submission (see :func:`_submission_context`)."""

    context: timetable.BookableSession | None
    earlier: Any = None
    options: tuple[list, list] | None = None


def _submission_context(db: Any, clinic_session_id: int, key: str | None, *, now: datetime) -> _Submission:
    """The session; when no place can be taken, also the booking this form already made (if
    any) and, failing that, the alternatives to offer: everything in one read."""
    context = timetable.session_with_context(db, clinic_session_id, now=now)
    if context is None or context.state is timetable.SessionState.bookable or key is None:
        return _Submission(context)
    earlier = appointments.find_by_submission_key(db, key)
    if earlier is not None:
        return _Submission(context, earlier)
    return _Submission(context, options=timetable.alternatives(db, context.clinic_session, now=now))


def _submit_booking(request: Request, page: Page, clinic_session_id: str, data: dict[str, str]) -> Response:
    sid = _int(clinic_session_id)
    if not sid:
        return page.not_found()
    now = clock.now()
    if data.get("step") == "review":  # coming from "choose another session": fill the form in, book nothing
        context = _read(request, timetable.session_with_context, sid, now=now)
        if context is None:
            return page.not_found()
        form = BookingForm(raw={name: str(data.get(name) or "")[:2000] for name in BookingForm.FIELDS})
        if context.state is not timetable.SessionState.bookable:
            return _unavailable(request, page, context, reason=context.state.value, raw=form.raw)
        return _booking_page(page, context, form,
                             submission=tokens.new_submission_token(str(sid), purpose=SUBMISSION_PURPOSE))

    form = BookingForm.validate(data, today=clock.local_now(now).date())
    submission = data.get("submission", "")
    key = tokens.read_submission_token(submission, str(sid), purpose=SUBMISSION_PURPOSE,
                                       max_age=SUBMISSION_MAX_AGE)
    found = _read(request, _submission_context, sid, None if form.errors else key, now=now)
    context = found.context
    if context is None:
        return page.not_found()
    if key is None:
        submission = tokens.new_submission_token(str(sid), purpose=SUBMISSION_PURPOSE)
    if form.errors:
        return _booking_page(page, context, form, submission=submission, status=422)
    if key is None:
        return _booking_page(page, context, form, submission=submission, status=400, problem=page.gettext(
            N_("This form was open for too long. Please check your details and send it again.")))

    if context.state is not timetable.SessionState.bookable:
        # No place can be taken (the session filled up, or closed, while the form was open):
        # answer from what was read, without the rate limit's and the booking's write
        # transactions, unless this very form already booked (a repeated submission).
        if found.earlier is not None:
            return RedirectResponse(view_link(found.earlier.id, confirmation=True), status_code=303)
        reason = "just_filled" if context.state is timetable.SessionState.full else context.state.value
        return _unavailable(request, page, context, reason=reason, raw=form.raw, options=found.options)

    wait = _limit(request, "book", get_settings().booking_rate_limit, BOOKING_WINDOW_SECONDS)
    if wait:
        return page.too_many(wait)
    values = form.values
    try:
        result = _write(
            request, booking.book_online, clinic_session_id=sid, full_name=values["full_name"], phone=values["phone"],
            birth_date=values["birth_date"], gender=values["gender"], national_id=values["national_id"],
            reason=values["reason"], submission_key=key,
            actor=Actor(username=ONLINE_ACTOR, ip=client_ip(request)), now=now,
        )
    except SlotFull:
        context = _read(request, timetable.session_with_context, sid, now=now) or context
        return _unavailable(request, page, context, reason="just_filled", raw=form.raw)
    except ClinicSessionNotBookable:
        context = _read(request, timetable.session_with_context, sid, now=now) or context
        return _unavailable(request, page, context, reason=context.state.value, raw=form.raw)
    except NotFound:
        return page.not_found()
    except DuplicateBooking:
        return page.message(
            N_("You already have a booking in this session"),
            N_("Only one booking per person per clinic session is possible. To see it, use "
               "“My booking” with its booking reference and your phone number."),
            status=409, links=(("/booking", N_("My booking")), (f"/departments/{quote(context.department.code)}",
                                                                   N_("Choose another session"))))
    except booking.IdentityMismatch:
        return _booking_page(page, context, form, submission=submission, status=409, problem=page.gettext(
            N_("We could not match these details to our records. Please check them, or book at the "
               "front desk or by phone.")))
    except ValidationFailed:
        return _booking_page(page, context, form, submission=submission, status=422, problem=page.gettext(
            N_("Some details could not be accepted. Please check them and try again.")))
    return RedirectResponse(view_link(result.appointment.id, confirmation=True), status_code=303)


# -- after booking ----------------------------------------------------------------------


def _details(request: Request, token: str) -> booking.BookingDetails | None:
    appointment_id = _appointment_from(token)
    if appointment_id is None:
        return None
    return _read(request, booking.booking_details, appointment_id, now=clock.now())


@router.get("/booked/{token}")
def confirmation(request: Request, token: str) -> Response:
    """The confirmation page: reference, queue number, time, place, fee and what to bring."""
    page = Page.of(request)
    details = _details(request, token)
    if details is None:
        return page.link_expired()
    return page.render("confirmation.html", private=True, d=details, manage=f"/booking/{token}")


@router.get("/booking")
def lookup_form(request: Request) -> Response:
    """The "My booking" form (reference and phone)."""
    return Page.of(request).render("lookup.html", form=LookupForm.empty(), problem=None)


@router.post("/booking")
async def lookup(request: Request) -> Response:
    """Find a booking by reference AND phone; a miss gives one neutral message."""
    return await _checked_post(request, _lookup)


def _lookup(request: Request, page: Page, data: dict[str, str]) -> Response:
    wait = _limit(request, "lookup", get_settings().lookup_rate_limit, LOOKUP_WINDOW_SECONDS)
    if wait:
        return page.too_many(wait)
    form = LookupForm.validate(data)
    if form.errors:
        return page.render("lookup.html", status=422, form=form, problem=None)
    found = _read(request, booking.find_booking, reference=form.reference, phone=form.phone)
    if found is None:
        return page.render("lookup.html", status=404, form=form, problem=page.gettext(
            N_("We could not find a booking with this reference and phone number. "
               "Please check both and try again.")))
    return RedirectResponse(view_link(found), status_code=303)


@router.get("/booking/{token}")
def booking_view(request: Request, token: str) -> Response:
    """A booking and its status, with the cancel form while the patient may still cancel."""
    page = Page.of(request)
    details = _details(request, token)
    if details is None:
        return page.link_expired()
    return page.render("booking.html", private=True, d=details, token=token, problem=None, reason_raw="",
                       reason_error=None)


@router.post("/booking/{token}/cancel")
async def cancel(request: Request, token: str) -> Response:
    """Cancel the booking of a signed link (until its session starts); back to its page."""
    return await _checked_post(request, _cancel, token)


def _cancel(request: Request, page: Page, token: str, data: dict[str, str]) -> Response:
    appointment_id = _appointment_from(token)
    if appointment_id is None:
        return page.link_expired()
    reason, error = clean_cancel_reason(data.get("reason", ""))
    if error is not None:
        details = _details(request, token)
        if details is None:
            return page.link_expired()
        return page.render("booking.html", status=422, private=True, d=details, token=token, problem=None,
                           reason_raw=data.get("reason", "")[:2000], reason_error=error)
    try:
        _write(request, booking.cancel_online, appointment_id, reason=reason,
               actor=Actor(username=ONLINE_ACTOR, ip=client_ip(request)), now=clock.now())
    except NotFound:
        return page.link_expired()
    except InvalidTransition:
        details = _details(request, token)
        if details is None:
            return page.link_expired()
        return page.render("booking.html", status=409, private=True, d=details, token=token,
                           reason_raw="", reason_error=None, problem=page.gettext(
                               N_("This booking can no longer be cancelled online: its session has started or "
                                  "it is no longer active. Please contact the front desk.")))
    return RedirectResponse(f"/booking/{token}", status_code=303)


# -- language ----------------------------------------------------------------------------


@router.get("/language/{code}")
def choose_language(request: Request, code: str, next: str = "/") -> Response:
    """Remember the language in a cookie (one year) and go back to the page (``next``)."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in i18n.COOKIE_CODES:
        response.set_cookie(i18n.LANG_COOKIE, code, max_age=LANG_COOKIE_MAX_AGE, path="/", httponly=True,
                            samesite="lax", secure=get_settings().secure_cookies or request.url.scheme == "https")
    return response
