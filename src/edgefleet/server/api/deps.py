"""`Annotated` dependencies shared by the routes."""

import ipaddress
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from edgefleet.server import security
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Device, RevokedToken, User
from edgefleet.server.errors import AuthError
from edgefleet.server.services import accounts
from edgefleet.server.services.principal import Principal
from edgefleet.server.services.queries import BadQueryError

_bearer = HTTPBearer(auto_error=False, description="A session token (JWT) or an API key (efk_...)")


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.edgefleet
    return context


ContextDep = Annotated[ServerContext, Depends(get_context)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent."""
    with context.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


class Announcer:
    """Real-time hub messages of one request, published once its transaction has committed (as
    background tasks, which run after the response): a client told of a change that reads it back at
    once finds it, and a request that fails announces nothing."""

    def __init__(self, context: ServerContext, background: BackgroundTasks) -> None:
        self._hub = context.hub
        self._background = background

    def publish(self, org_id: int, type_: str, data: dict[str, Any]) -> None:
        self._background.add_task(self._hub.publish, org_id, type_, data)


def get_announcer(context: ContextDep, background: BackgroundTasks) -> Announcer:
    return Announcer(context, background)


AnnouncerDep = Annotated[Announcer, Depends(get_announcer)]


def principal_from_token(session: Session, context: ServerContext, token: str) -> Principal:
    """Resolve a bearer/cookie token (JWT or API key) to a principal, or raise AuthError."""
    if security.is_api_key(token):
        return Principal(accounts.user_from_api_key(session, token), via="api_key")
    claims = security.read_token(context.settings.secret_key.get_secret_value(), token)
    return Principal(session_user(session, claims), via="session")


def session_user(session: Session, claims: security.TokenClaims) -> User:
    """The user of a session token that is still valid: the user active in the same organization, the
    password not changed since (epoch), the session not logged out (revoked); AuthError otherwise."""
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active or user.org_id != claims.org_id:
        raise AuthError("the session's user no longer exists or is disabled")
    if claims.epoch != user.session_epoch:
        raise AuthError("the session ended when the password was changed; sign in again")
    if claims.token_id is not None and session.get(RevokedToken, claims.token_id) is not None:
        raise AuthError("the session was logged out; sign in again")
    return user


def get_principal(
    request: Request,
    session: SessionDep,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else request.cookies.get(context.settings.cookie_name)
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "not signed in", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return principal_from_token(session, context, token)
    except AuthError as err:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(err), headers={"WWW-Authenticate": "Bearer"}
        ) from err


CurrentUser = Annotated[Principal, Depends(get_principal)]


def _role(role: str) -> Callable[[Principal], Principal]:
    def require(principal: CurrentUser) -> Principal:
        principal.require(role)
        return principal

    return require


AdminUser = Annotated[Principal, Depends(_role("admin"))]
OwnerUser = Annotated[Principal, Depends(_role("owner"))]


_basic = HTTPBasic(auto_error=False, description="A device: its id and its device secret (from the claim)")
_DUMMY_DEVICE_HASH = security.hash_device_secret("edgefleet-dummy-device-secret")


def get_device(
    session: SessionDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> Device:
    """The claimed, unrevoked device whose id and secret came in HTTP Basic auth; 401 otherwise."""
    if credentials is None:
        raise _refuse_device("device credentials needed (HTTP Basic: device id, device secret)")
    device = session.get(Device, credentials.username)
    stored = device.secret_hash if device is not None and device.revoked_at is None else None
    # Check a dummy hash for unknown or revoked devices too, so timing does not tell them apart.
    matches = security.verify_device_secret(stored or _DUMMY_DEVICE_HASH, credentials.password)
    if device is None or stored is None or not matches:
        raise _refuse_device("unknown device, wrong device secret, or revoked device")
    return device


def _refuse_device(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Basic"})


DeviceAuth = Annotated[Device, Depends(get_device)]


@cache
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_address(peer: str, forwarded_for: list[str], trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
    `X-Forwarded-For` entry that is not a trusted proxy itself (the left ones are the client's say)."""
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop if _is_ip(hop) else peer
    return peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def client_address(request: Request) -> str:
    """Where the request comes from, for rate limits. `X-Forwarded-For` counts only when the TCP peer
    is one of `EDGEFLEET_TRUSTED_PROXIES` (none by default)."""
    peer = request.client.host if request.client else "unknown"
    settings = get_context(request).settings
    return forwarded_address(
        peer, request.headers.getlist("x-forwarded-for"), tuple(settings.trusted_proxies)
    )


ClientAddress = Annotated[str, Depends(client_address)]


# --- bounded inputs: what the databases cannot hold is a 422 with a reason, not a driver error ----
MAX_ID = 2**63 - 1
"""Row ids are 64-bit in SQLite and PostgreSQL; a larger number names nothing."""
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _query_time(value: datetime | None) -> datetime | None:
    """A filter time: without a zone it is UTC; converted to UTC; between 1900 and 9999."""
    if value is None:
        return None
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as err:
        raise ValueError("the time is out of range once converted to UTC") from err
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"the time must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return value


_CursorQuery = Annotated[str | None, Query(max_length=20, description="`next_cursor` of the previous page")]


def _cursor(cursor: _CursorQuery = None) -> str | None:
    if cursor is not None and (not cursor.isascii() or not cursor.isdigit() or int(cursor) > MAX_ID):
        raise BadQueryError(f"bad cursor {cursor!r}: pass a `next_cursor` from a previous page")
    return cursor


IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (64-bit)")]
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID, description="a row id (64-bit)")]
QueryTime = Annotated[
    datetime | None,
    Query(description="ISO 8601; UTC unless it names a zone; years 1900 to 9998"),
    AfterValidator(_query_time),
]
Cursor = Annotated[str | None, Depends(_cursor)]
