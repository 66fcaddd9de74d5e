"""Users of the caller's organization, and invites."""

from fastapi import APIRouter, status

from edgefleet.server.api.deps import ContextDep, CurrentUser, IdPath, OwnerUser, SessionDep
from edgefleet.server.schemas import InviteCreate, InviteCreated, InvitePublic, UserPublic, UserUpdate
from edgefleet.server.services import accounts

router = APIRouter(prefix="/users", tags=["users"])


@router.get("")
def list_users(principal: CurrentUser, session: SessionDep) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in accounts.list_users(session, principal)]


@router.patch("/{user_id}")
def update_user(user_id: IdPath, body: UserUpdate, principal: OwnerUser, session: SessionDep) -> UserPublic:
    """Change a user's role or disable them (owner)."""
    return UserPublic.model_validate(accounts.update_user(session, principal, user_id, body))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: IdPath, principal: OwnerUser, session: SessionDep) -> None:
    accounts.delete_user(session, principal, user_id)


@router.get("/invites")
def list_invites(principal: OwnerUser, session: SessionDep) -> list[InvitePublic]:
    return [InvitePublic.model_validate(i) for i in accounts.list_invites(session, principal)]


@router.post("/invites", status_code=status.HTTP_201_CREATED)
def create_invite(
    body: InviteCreate, principal: OwnerUser, session: SessionDep, context: ContextDep
) -> InviteCreated:
    """Invite someone by email; the token is shown once (owner)."""
    invite, token = accounts.create_invite(session, principal, body, context.settings.invite_ttl_s)
    return InviteCreated.model_validate({**InvitePublic.model_validate(invite).model_dump(), "token": token})
