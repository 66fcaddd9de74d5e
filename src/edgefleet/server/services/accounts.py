"""Organizations, users, invites and API keys."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server import security
from edgefleet.server.db.models import ApiKey, Invite, Organization, User
from edgefleet.server.errors import AuthError, ConflictError, NotFoundError, PermissionDeniedError
from edgefleet.server.ratelimit import LoginRateLimiter
from edgefleet.server.schemas import ROLE_RANK, InviteCreate, OrganizationUpdate, UserUpdate
from edgefleet.server.services import audit
from edgefleet.server.services.principal import Principal


def _email_taken(session: Session, email: str) -> bool:
    return session.scalar(select(func.count()).select_from(User).where(User.email == email)) != 0


def sign_up(session: Session, email: str, password: str, organization: str) -> User:
    """Create an organization and its first user, the owner. The password must pass the policy."""
    security.check_password(password, context=(email, organization))
    if _email_taken(session, email):
        raise ConflictError(f"an account for {email} exists already")
    org = Organization(name=organization)
    session.add(org)
    session.flush()
    user = User(org_id=org.id, email=email, password_hash=security.hash_password(password), role="owner")
    session.add(user)
    session.flush()
    audit.record(session, org.id, user.id, "organization.create", "organization", org.id, name=organization)
    return user


def create_user(session: Session, org_id: int, email: str, password: str, role: str) -> User:
    org = session.get(Organization, org_id)
    security.check_password(password, context=(email, org.name if org else ""))
    if _email_taken(session, email):
        raise ConflictError(f"an account for {email} exists already")
    if org is None:
        raise NotFoundError(f"no organization {org_id}")
    user = User(org_id=org_id, email=email, password_hash=security.hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(
    session: Session, email: str, password: str, limiter: LoginRateLimiter, address: str
) -> User:
    limiter.check(email, address)
    user = session.scalar(select(User).where(User.email == email.lower()))
    if not security.verify_password(user.password_hash if user else None, password) or user is None:
        limiter.failed(email, address)
        raise AuthError("wrong email or password")
    if not user.is_active:
        limiter.failed(email, address)
        raise AuthError("this account is disabled")
    limiter.succeeded(email, address)
    return user


def change_password(session: Session, principal: Principal, current: str, new: str) -> bool:
    """Needs the current password. A new password ends every session issued before it (someone who
    took one keeps nothing); API keys stay, they are revoked one by one. Returns whether sessions
    ended; a fresh session for the caller must carry the user's new `session_epoch`."""
    user = session.get(User, principal.user.id)
    if user is None or not security.verify_password(user.password_hash, current):
        raise AuthError("the current password is wrong")
    org = session.get(Organization, user.org_id)
    security.check_password(new, context=(user.email, org.name if org else ""))
    user.password_hash = security.hash_password(new)
    ended = new != current
    if ended:
        user.session_epoch += 1
    audit.record(session, user.org_id, user.id, "user.password_change", "user", user.id)
    return ended


def user_from_api_key(session: Session, key: str) -> User:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == security.sha256_hex(key)))
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked API key")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthError("the API key's user is disabled")
    row.last_used_at = utc_now()
    return user


def create_api_key(session: Session, principal: Principal, name: str) -> tuple[ApiKey, str]:
    key, prefix, key_hash = security.new_api_key()
    row = ApiKey(user_id=principal.user.id, name=name, prefix=prefix, key_hash=key_hash)
    session.add(row)
    session.flush()
    audit.record(session, principal.org_id, principal.user.id, "api_key.create", "api_key", row.id, name=name)
    return row, key


def list_api_keys(session: Session, principal: Principal) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.user_id == principal.user.id).order_by(ApiKey.id)
    return list(session.scalars(query))


def revoke_api_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != principal.user.id:
        raise NotFoundError(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        audit.record(session, principal.org_id, principal.user.id, "api_key.revoke", "api_key", row.id)
    return row


def get_organization(session: Session, principal: Principal) -> Organization:
    org = session.get(Organization, principal.org_id)
    if org is None:
        raise NotFoundError("organization not found")
    return org


def update_organization(session: Session, principal: Principal, update: OrganizationUpdate) -> Organization:
    principal.require("owner")
    org = get_organization(session, principal)
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(org, field, value)
    audit.record(session, org.id, principal.user.id, "organization.update", "organization", org.id, **changes)
    return org


def list_users(session: Session, principal: Principal) -> list[User]:
    return list(session.scalars(select(User).where(User.org_id == principal.org_id).order_by(User.id)))


def _user_in_org(session: Session, principal: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.org_id != principal.org_id:
        raise NotFoundError(f"no user {user_id}")
    return user


def _owners(session: Session, org_id: int) -> int:
    query = select(func.count()).select_from(User)
    return session.scalar(query.where(User.org_id == org_id, User.role == "owner", User.is_active)) or 0


def update_user(session: Session, principal: Principal, user_id: int, update: UserUpdate) -> User:
    principal.require("owner")
    user = _user_in_org(session, principal, user_id)
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    losing_owner = user.role == "owner" and (
        changes.get("role", "owner") != "owner" or changes.get("is_active") is False
    )
    if losing_owner and _owners(session, principal.org_id) <= 1:
        raise ConflictError("an organization keeps at least one active owner")
    for field, value in changes.items():
        setattr(user, field, value)
    audit.record(session, principal.org_id, principal.user.id, "user.update", "user", user.id, **changes)
    return user


def delete_user(session: Session, principal: Principal, user_id: int) -> None:
    principal.require("owner")
    user = _user_in_org(session, principal, user_id)
    if user.role == "owner" and _owners(session, principal.org_id) <= 1:
        raise ConflictError("an organization keeps at least one active owner")
    audit.record(
        session, principal.org_id, principal.user.id, "user.delete", "user", user.id, email=user.email
    )
    session.delete(user)


def create_invite(
    session: Session, principal: Principal, invite: InviteCreate, ttl_s: int
) -> tuple[Invite, str]:
    principal.require("owner")
    if ROLE_RANK[invite.role] > ROLE_RANK[principal.role]:
        raise PermissionDeniedError("you cannot invite someone with a higher role than yours")
    # No "exists already" here: that would tell any owner which emails have an account anywhere. An
    # invite for a taken email is refused when it is accepted, to the invitee (whose email it is).
    token, token_hash = security.new_one_time_token()
    row = Invite(
        org_id=principal.org_id,
        email=invite.email,
        role=invite.role,
        token_hash=token_hash,
        created_by=principal.user.id,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    session.add(row)
    session.flush()
    audit.record(
        session, principal.org_id, principal.user.id, "invite.create", "invite", row.id, email=invite.email
    )
    return row, token


def list_invites(session: Session, principal: Principal) -> list[Invite]:
    return list(session.scalars(select(Invite).where(Invite.org_id == principal.org_id).order_by(Invite.id)))


def accept_invite(session: Session, token: str, password: str) -> User:
    invite = session.scalar(select(Invite).where(Invite.token_hash == security.sha256_hex(token)))
    if invite is None or invite.accepted_at is not None or invite.expires_at <= utc_now():
        raise AuthError("the invite is unknown, used or expired")
    user = create_user(session, invite.org_id, invite.email, password, invite.role)
    invite.accepted_at = utc_now()
    audit.record(session, invite.org_id, user.id, "invite.accept", "user", user.id, email=user.email)
    return user
