"""Sign-up, login/logout, the current user, invites, API keys."""

from fastapi import APIRouter, Request, Response, status

from edgefleet.server.api.deps import ClientAddress, ContextDep, CurrentUser, IdPath, SessionDep
from edgefleet.server.api.session_cookie import end_session, start_session
from edgefleet.server.errors import AuthError, PermissionDeniedError
from edgefleet.server.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    InviteAccept,
    Login,
    PasswordChange,
    SignUp,
    TokenPublic,
    UserPublic,
)
from edgefleet.server.services import accounts

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/signup", status_code=status.HTTP_201_CREATED)
def sign_up(
    body: SignUp,
    session: SessionDep,
    context: ContextDep,
    address: ClientAddress,
    *,
    request: Request,
    response: Response,
) -> TokenPublic:
    """Create an organization with you as its owner, and sign in (when the server allows sign-up;
    rate limited per address)."""
    if not context.settings.allow_signup:
        raise PermissionDeniedError("sign-up is disabled on this server; ask an owner for an invite")
    context.limiter.sign_up(address)
    user = accounts.sign_up(session, body.email, body.password, body.organization)
    return start_session(context, user, response, request)


@router.post("/login")
def login(
    body: Login,
    session: SessionDep,
    context: ContextDep,
    address: ClientAddress,
    *,
    request: Request,
    response: Response,
) -> TokenPublic:
    """Sign in: sets the HttpOnly session cookie and returns the same token for scripts."""
    user = accounts.authenticate(session, body.email, body.password, context.limiter, address)
    return start_session(context, user, response, request)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(context: ContextDep, request: Request, response: Response) -> None:
    """End this session: its token (bearer or cookie) is revoked on the server and the cookie
    removed. Other sessions and API keys stay."""
    end_session(context, request, response)


@router.get("/me")
def read_me(principal: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(principal.user)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    body: PasswordChange,
    principal: CurrentUser,
    session: SessionDep,
    *,
    context: ContextDep,
    address: ClientAddress,
    request: Request,
    response: Response,
) -> None:
    """Change your password (needs the current one; failures count like failed logins). Every
    session issued before ends; the browser gets a fresh session cookie, scripts log in again."""
    context.limiter.check(principal.user.email, address)
    try:
        accounts.change_password(session, principal, body.current_password, body.new_password)
    except AuthError:
        context.limiter.failed(principal.user.email, address)
        raise
    context.limiter.succeeded(principal.user.email, address)
    start_session(context, principal.user, response, request)  # the same row the change updated (one session)


@router.post("/invites/accept", status_code=status.HTTP_201_CREATED)
def accept_invite(
    body: InviteAccept, session: SessionDep, context: ContextDep, request: Request, response: Response
) -> TokenPublic:
    """Join an organization with an invite token, and sign in."""
    user = accounts.accept_invite(session, body.token, body.password)
    return start_session(context, user, response, request)


@router.get("/api-keys")
def list_api_keys(principal: CurrentUser, session: SessionDep) -> list[ApiKeyPublic]:
    return [ApiKeyPublic.model_validate(k) for k in accounts.list_api_keys(session, principal)]


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyCreate, principal: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    """A key for scripts, with your role; the key is shown once."""
    row, key = accounts.create_api_key(session, principal, body.name)
    return ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(row).model_dump(), "key": key})


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: IdPath, principal: CurrentUser, session: SessionDep) -> None:
    accounts.revoke_api_key(session, principal, key_id)
