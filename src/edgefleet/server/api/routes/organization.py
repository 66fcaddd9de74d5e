"""The caller's organization and its audit log."""

from typing import Annotated

from fastapi import APIRouter, Query

from edgefleet.server import signing
from edgefleet.server.api.deps import AdminUser, ContextDep, CurrentUser, OwnerUser, SessionDep
from edgefleet.server.schemas import AuditPublic, OrganizationPublic, OrganizationUpdate, SigningKeyPublic
from edgefleet.server.services import accounts, audit

router = APIRouter(prefix="/organization", tags=["organization"])


@router.get("")
def read_organization(principal: CurrentUser, session: SessionDep) -> OrganizationPublic:
    return OrganizationPublic.model_validate(accounts.get_organization(session, principal))


@router.patch("")
def update_organization(
    body: OrganizationUpdate, principal: OwnerUser, session: SessionDep
) -> OrganizationPublic:
    """Rename, or change retention (owner)."""
    return OrganizationPublic.model_validate(accounts.update_organization(session, principal, body))


@router.get("/signing-key")
def read_signing_key(principal: CurrentUser, session: SessionDep, context: ContextDep) -> SigningKeyPublic:
    """The public key model packages of your organization are signed with (devices trust it)."""
    key_id, public_key = signing.public_key(session, principal.org_id, secret=context.settings.secret_key)
    return SigningKeyPublic(key_id=key_id, public_key=public_key)


@router.get("/audit")
def list_audit_entries(
    principal: AdminUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditPublic]:
    return [AuditPublic.model_validate(e) for e in audit.list_entries(session, principal.org_id, limit)]
