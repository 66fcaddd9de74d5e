"""The browser session: a signed, expiring token in an HttpOnly cookie (API routes and dashboard forms)."""

from datetime import UTC, datetime, timedelta

from fastapi import Response

from edgefleet.server import security
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import User
from edgefleet.server.schemas import TokenPublic


def start_session(context: ServerContext, user: User, response: Response) -> TokenPublic:
    """Set the session cookie on `response`; the same token is returned for scripts."""
    settings = context.settings
    token = security.issue_token(
        settings.secret_key.get_secret_value(), user.id, user.org_id, settings.jwt_ttl_s, user.session_epoch
    )
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=settings.jwt_ttl_s,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return TokenPublic(
        access_token=token, expires_at=datetime.now(UTC) + timedelta(seconds=settings.jwt_ttl_s)
    )


def end_session(context: ServerContext, response: Response) -> None:
    response.delete_cookie(context.settings.cookie_name, path="/")
