"""The "Change password" page: any logged-in member of staff changes their own password."""

from __future__ import annotations

from sqladmin import BaseView, expose
from sqladmin.flash import Flash
from starlette import status
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.core.actor import current_actor
from portal.core.db import transaction
from portal.core.errors import DomainError
from portal.core.passwords import MIN_PASSWORD_LENGTH
from portal.services import staff_accounts
from views._access import staff_of
from views._csrf import FIELD as CSRF_FIELD
from views._csrf import csrf_token, csrf_valid
from views._forms import posted_form


class ChangePasswordView(BaseView):
    """Current password, new password twice; ends the user's other sessions.

    Linked from the top bar rather than the menu (``is_visible`` is False).
    """

    name = "Change password"
    icon = "fa-solid fa-key"
    identity = "change-password"

    def is_visible(self, request: Request) -> bool:
        """Not in the menu: the top bar links to it."""
        return False

    @expose("/password", methods=["GET", "POST"], identity="change-password")
    async def change_password(self, request: Request) -> Response:
        """GET shows the form; POST changes the password (then redirects: POST/redirect/GET)."""
        staff = staff_of(request)
        context = {"title": "Change password", "min_length": MIN_PASSWORD_LENGTH, "error": None}
        if request.method == "POST":
            form = await posted_form(request)
            if not csrf_valid(request, form.get(CSRF_FIELD)):
                raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="The form expired; please try again.")
            engine = self._admin_ref.session_maker.kw["bind"]
            actor = current_actor.get()

            def change() -> int:
                """Change the password in one transaction; returns the new session epoch."""
                with transaction(engine) as db:
                    return staff_accounts.change_password(
                        db, staff.id,
                        current=str(form.get("current_password", "")),
                        new=str(form.get("new_password", "")),
                        repeated=str(form.get("new_password_again", "")),
                        actor=actor,
                    )

            try:
                epoch = await run_in_threadpool(change)
            except DomainError as exc:
                context["error"] = exc.message
            else:
                request.session["epoch"] = epoch  # this session lives on; the others end
                Flash.success(request, "Your password was changed; your other sessions have ended.")
                return RedirectResponse(request.url_for("admin:index"), status_code=status.HTTP_302_FOUND)
        context["csrf_token"] = csrf_token(request)
        return await self.templates.TemplateResponse(
            request, "change_password.html", context,
            status_code=status.HTTP_400_BAD_REQUEST if context["error"] else status.HTTP_200_OK,
        )
