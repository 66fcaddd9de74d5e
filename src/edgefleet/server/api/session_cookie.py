"""The browser session: a signed, expiring token in an HttpOnly cookie (API routes and dashboard forms).

Logging out revokes the token on the server (`revoked_tokens`, by its `jti`), so a copy of it (a
script, a stolen cookie) stops working too, not only the browser's cookie.
"""

from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from edgefleet.server import security
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import RevokedToken, User
from edgefleet.server.errors import AuthError
from edgefleet.server.schemas import TokenPublic
from edgefleet.server.settings import ServerSettings


def cookie_is_secure(settings: ServerSettings, request: Request | None) -> bool:
    """`COOKIE_SECURE` when set; else Secure when the server's public URL is https or this request
    came over TLS (uvicorn takes the scheme from `X-Forwarded-Proto` only from its trusted proxies,
    `--forwarded-allow-ips`, 127.0.0.1 by default)."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    if settings.public_url.lower().startswith("https://"):
        return True
    return request is not None and request.url.scheme in ("https", "wss")


def start_session(
    context: ServerContext, user: User, response: Response, request: Request | None = None
) -> TokenPublic:
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
        secure=cookie_is_secure(settings, request),
        samesite="lax",
        path="/",
    )
    return TokenPublic(
        access_token=token, expires_at=datetime.now(UTC) + timedelta(seconds=settings.jwt_ttl_s)
    )


def presented_tokens(context: ServerContext, request: Request) -> list[str]:
    """The session tokens a request carries: `Authorization: Bearer` and the session cookie."""
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else ""
    cookie = request.cookies.get(context.settings.cookie_name, "")
    return list(dict.fromkeys(t for t in (bearer, cookie) if t))


def revoke(session: Session, context: ServerContext, token: str | None) -> bool:
    """End the session of `token` on the server; True when one ended. API keys are not sessions
    (revoke them by id); an invalid or expired token has nothing to end. A token without an id (issued
    before revocation existed) cannot be told from the user's other sessions: all of them end."""
    if not token or security.is_api_key(token):
        return False
    try:
        claims = security.read_token(context.settings.secret_key.get_secret_value(), token)
    except AuthError:
        return False
    user = session.get(User, claims.user_id)
    if user is None or user.org_id != claims.org_id or claims.epoch != user.session_epoch:
        return False  # already ended
    now = datetime.now(UTC)
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    if claims.token_id is None:
        user.session_epoch += 1
    elif session.get(RevokedToken, claims.token_id) is None:
        session.add(RevokedToken(jti=claims.token_id, user_id=user.id, expires_at=claims.expires_at))
    return True


def end_session(context: ServerContext, request: Request, response: Response) -> None:
    """Log out: revoke the request's session tokens (bearer and cookie) on the server and remove the
    cookie."""
    tokens = presented_tokens(context, request)
    if tokens:
        with context.sessions() as session, session.begin():
            for token in tokens:
                revoke(session, context, token)
    response.delete_cookie(
        context.settings.cookie_name,
        path="/",
        httponly=True,
        secure=cookie_is_secure(context.settings, request),
        samesite="lax",
    )
