"""The base of the portal's ``Admin`` (``views.dashboard.PortalAdmin``): sqladmin's, with a menu that hides empty categories, a
login page that can say "too many failed attempts", and logging out as a POST."""

from __future__ import annotations

from typing import Any

from jinja2.bccache import Bucket, BytecodeCache
from sqladmin import Admin
from sqladmin._menu import CategoryMenu, ViewMenu
from sqladmin.authentication import login_required
from sqladmin.models import BaseView, ModelView
from starlette import status
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from portal.web.headers import NONCE_KEY
from views._csrf import csrf_token
from views._forms import posted_form
from views.i18n import gettext, ngettext

INVALID_LOGIN = "Invalid credentials."  # sqladmin's own words


def csp_nonce(request: Request) -> str:
    """This response's Content-Security-Policy nonce (``portal.web.headers``), for inline scripts.

    Args:
        request (Request): the request being answered.

    Returns:
        str: the nonce, or "" when no security-headers middleware set one (the script
        is then refused by any policy, which is the safe failure).
    """
    return str(request.scope.get("state", {}).get(NONCE_KEY, ""))


class _CategoryMenu(CategoryMenu):
    """A menu category shown only when at least one of its screens is open to the user."""

    def is_accessible(self, request: Request) -> bool:
        """True when any screen of the category is visible and open to the user."""
        return any(c.is_visible(request) and c.is_accessible(request) for c in self.children)


class _CompiledTemplates(BytecodeCache):
    """Jinja2's bytecode cache kept in memory: a template is compiled once per process
    (keyed by name and source checksum, so a changed template is compiled again)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        """Fill ``bucket`` from memory when this template was compiled before."""
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep ``bucket``'s freshly compiled code."""
        self._code[bucket.key] = bucket.bytecode_to_string()


#: The admin templates' compiled code, shared by every admin of this process.
COMPILED_TEMPLATES = _CompiledTemplates()


class SecureAdmin(Admin):
    """sqladmin's Admin with role-aware menu categories, a throttling-aware login,
    create/edit forms that refuse file parts (``views._forms.posted_form``), and logout
    as a POST (GET /admin/logout only asks).

    Templates get ``csrf_token_for(request)`` (``views._csrf.csrf_token``), ``csp_nonce(request)`` and
    the admin's words ``_`` and ``ngettext`` (``views.i18n``);
    their compiled code is kept in :data:`COMPILED_TEMPLATES`, shared by every admin the
    process builds (a test run builds one per test; a server builds one).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates.env.globals.update(csrf_token_for=csrf_token, csp_nonce=csp_nonce, _=gettext, ngettext=ngettext)
        self.templates.env.bytecode_cache = COMPILED_TEMPLATES
        routes = self.admin.router.routes
        for i, route in enumerate(routes):
            if isinstance(route, Route) and route.name == "logout":
                routes[i] = Route("/logout", endpoint=self.logout, name="logout", methods=["GET", "POST"])

    @staticmethod
    async def _handle_form_data(request: Request, obj: Any = None) -> FormData:
        # sqladmin's version looks an empty file part up as an attribute of the row
        # (AttributeError: a 500); no portal form takes files, so refuse them first.
        await posted_form(request)
        return await Admin._handle_form_data(request, obj)

    def _build_menu(self, view: ModelView | BaseView) -> None:
        if not view.category:
            return super()._build_menu(view)
        menu = _CategoryMenu(name=view.category, icon=view.category_icon)
        menu.add_child(ViewMenu(view=view, name=view.name, icon=view.icon))
        self._menu.add(menu)

    @login_required
    async def logout(self, request: Request) -> Response:
        """POST ends the login (its CSRF token is checked by ``views._csrf_guard``); GET
        shows a page asking to confirm, so a link cannot log anyone out."""
        if request.method == "POST":
            return await super().logout(request)
        return await self.templates.TemplateResponse(request, "portal/logout.html", {"title": "Log out"})

    async def login(self, request: Request) -> Response:
        """GET shows the form; POST logs in, or says why not.

        A refused login shows either "Invalid credentials." (400) or, while
        the username or address is throttled, "Too many failed attempts; try again in
        N minutes." (429); the same words whether or not the account exists.
        """
        if request.method == "HEAD":  # the form's headers, never a login attempt
            return await self.templates.TemplateResponse(request, "sqladmin/login.html")
        if request.method == "GET" or self.authentication_backend is None:
            return await super().login(request)
        await posted_form(request)  # no files, a bounded number of fields (read once, then cached)
        if await self.authentication_backend.login(request):
            return RedirectResponse(request.url_for("admin:index"), status_code=status.HTTP_302_FOUND)
        refusal = getattr(request.state, "login_refusal", None)
        return await self.templates.TemplateResponse(
            request,
            "sqladmin/login.html",
            {"error": refusal or INVALID_LOGIN},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS if refusal else status.HTTP_400_BAD_REQUEST,
        )
