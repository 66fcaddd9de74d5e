"""Read side of the sampled raw windows (org-scoped, newest first, keyset-paginated on id)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.server.db.models import WindowSampleRow
from edgefleet.server.services.queries import keyset_page


@dataclass(frozen=True)
class SampleFilter:
    device_kind: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_samples(
    session: Session, org_id: int, where: SampleFilter, cursor: str | None, limit: int
) -> tuple[list[WindowSampleRow], str | None]:
    """Newest first; `next_cursor` continues with older samples (stable while new ones arrive)."""
    query = select(WindowSampleRow).where(WindowSampleRow.org_id == org_id)
    if where.device_kind:
        query = query.where(WindowSampleRow.device_kind == where.device_kind)
    if where.model_id:
        query = query.where(WindowSampleRow.model_id == where.model_id)
    if where.model_version:
        query = query.where(WindowSampleRow.model_version == where.model_version)
    if where.device_id:
        query = query.where(WindowSampleRow.device_id == where.device_id)
    if where.since:
        query = query.where(WindowSampleRow.ts >= where.since)
    if where.until:
        query = query.where(WindowSampleRow.ts < where.until)
    return keyset_page(session, query, WindowSampleRow.id, cursor, limit)
