"""Who is looking at a page: the session cookie (or bearer token) resolved to a user of one organization."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from edgefleet.server import security
from edgefleet.server.api.deps import principal_from_token, session_user
from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Organization, User
from edgefleet.server.errors import AuthError
from edgefleet.server.schemas import ROLE_RANK
from edgefleet.server.services.principal import Principal

T = TypeVar("T")


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as a page sees it; actions re-read the user (roles can change meanwhile)."""

    user_id: int
    org_id: int
    email: str
    role: str
    org_name: str
    claims: security.TokenClaims | None = None
    """The session the page was opened with: its actions stop when it ends (logout, password change)."""

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _viewer_from_token(context: ServerContext, token: str | None) -> Viewer | None:
    if not token:
        return None
    with context.sessions() as session, session.begin():
        try:
            user = principal_from_token(session, context, token).user
        except AuthError:
            return None
        claims = None if security.is_api_key(token) else _claims(context, token)
        org = session.get(Organization, user.org_id)
        return Viewer(user.id, user.org_id, user.email, user.role, org.name if org else "", claims)


def _claims(context: ServerContext, token: str) -> security.TokenClaims:
    return security.read_token(context.settings.secret_key.get_secret_value(), token)


async def viewer_of(context: ServerContext, request: Request) -> Viewer | None:
    token = request.cookies.get(context.settings.cookie_name)
    return await asyncio.to_thread(_viewer_from_token, context, token)


def principal_of(session: Session, viewer: Viewer) -> Principal:
    """The viewer's current rights, read again from the database; refused once the page's session
    ended (logged out in another tab, the password changed)."""
    user = session.get(User, viewer.user_id)
    if user is None or not user.is_active or user.org_id != viewer.org_id:
        raise AuthError("your account was removed or disabled; sign in again")
    if viewer.claims is not None:
        session_user(session, viewer.claims)
    return Principal(user, via="session")


async def in_db(context: ServerContext, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction on a worker thread (never block the event loop on the database)."""

    def run() -> T:
        with transaction(context.sessions) as session:
            return work(session)

    return await asyncio.to_thread(run)
