"""Audit log: who changed what, in the same transaction as the change."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.server.db.models import AuditEntry


def record(  # noqa: PLR0917 - one positional call shape used everywhere
    session: Session,
    org_id: int,
    actor_user_id: int | None,
    action: str,
    target_type: str,
    target_id: str | int,
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            org_id=org_id,
            actor_user_id=actor_user_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            detail=detail,
        )
    )


def list_entries(session: Session, org_id: int, limit: int = 100) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.org_id == org_id).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(query))
