"""Form posts for the browser: sign-up, login and logout set or clear the HttpOnly session cookie.

The pages post plain HTML forms here (not over the UI's WebSocket) because only an HTTP response
can set an HttpOnly cookie; the answer is a redirect, so the browser history stays clean.
"""

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from edgefleet.server.api.deps import client_address
from edgefleet.server.api.session_cookie import end_session, start_session
from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import User
from edgefleet.server.errors import AuthError, ConflictError, RateLimitedError
from edgefleet.server.schemas import InviteAccept, Login, SignUp
from edgefleet.server.services import accounts

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ui", include_in_schema=False)


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.edgefleet
    return context


def _back(page: str, error: str, email: str = "") -> RedirectResponse:
    target = f"{page}?error={quote(error)}" + (f"&email={quote(email)}" if email else "")
    return RedirectResponse(target, status_code=303)


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this server, else "/": never another site (`//evil.example`,
    `/\\evil.example`, which browsers read as `//`), never whitespace, quotes or control characters."""
    if not target or len(target) > 2048 or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/"
    if any(c.isspace() or c in "\\\"'<>`" or ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    return target


def _signed_in(context: ServerContext, request: Request, user: User, to: str) -> RedirectResponse:
    response = RedirectResponse(safe_next(to), 303)
    start_session(context, user, response, request)
    return response


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return f"{field}: {first['msg']}"


@router.post("/login")
def login_form(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> RedirectResponse:
    context = _context(request)
    try:
        body = Login(email=email, password=password)
    except ValidationError as err:
        return _back("/login", _first_error(err), email)
    address = client_address(request)  # X-Forwarded-For only from trusted proxies, as the API
    try:
        with transaction(context.sessions) as session:
            user = accounts.authenticate(session, body.email, body.password, context.limiter, address)
    except RateLimitedError as err:
        return _back("/login", f"too many failed logins; try again in {err.retry_after:.0f} s", email)
    except AuthError as err:
        return _back("/login", str(err), email)
    return _signed_in(context, request, user, next)


@router.post("/signup")
def signup_form(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    organization: Annotated[str, Form()] = "",
) -> RedirectResponse:
    context = _context(request)
    if not context.settings.allow_signup:
        return _back("/signup", "sign-up is disabled on this server; ask an owner for an invite")
    try:
        body = SignUp(email=email, password=password, organization=organization)
    except ValidationError as err:
        return _back("/signup", _first_error(err), email)
    try:  # the same per-address limit as POST /api/v1/auth/signup
        context.limiter.sign_up(client_address(request))
    except RateLimitedError as err:
        return _back(
            "/signup", f"too many sign-ups from this address; try again in {err.retry_after:.0f} s", email
        )
    try:
        with transaction(context.sessions) as session:
            user = accounts.sign_up(session, body.email, body.password, body.organization)
    except ConflictError as err:
        return _back("/signup", str(err), email)
    log.info("organization %r signed up", body.organization)
    return _signed_in(context, request, user, "/")


@router.post("/invite")
def invite_form(
    request: Request, token: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
) -> RedirectResponse:
    context = _context(request)
    try:
        body = InviteAccept(token=token.strip(), password=password)
    except ValidationError as err:
        return _back("/invite", _first_error(err))
    try:
        with transaction(context.sessions) as session:
            user = accounts.accept_invite(session, body.token, body.password)
    except (AuthError, ConflictError) as err:
        return _back("/invite", str(err))
    return _signed_in(context, request, user, "/")


@router.post("/logout")
def logout_form(request: Request) -> RedirectResponse:
    """End this session on the server (its token is revoked), not only in this browser."""
    response = RedirectResponse("/login", status_code=303)
    end_session(_context(request), request, response)
    return response
