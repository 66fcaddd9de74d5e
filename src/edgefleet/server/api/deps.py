"""`Annotated` dependencies shared by the routes."""

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.orm import Session

from edgefleet.server import security
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Device, User
from edgefleet.server.errors import AuthError
from edgefleet.server.services import accounts
from edgefleet.server.services.principal import Principal

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
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active or user.org_id != claims.org_id:
        raise AuthError("the session's user no longer exists or is disabled")
    if claims.epoch != user.session_epoch:
        raise AuthError("the session ended when the password was changed; sign in again")
    return Principal(user, via="session")


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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]
