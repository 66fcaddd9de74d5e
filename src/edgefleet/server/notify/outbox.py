"""The notification outbox: an alarm transition is a row written in the alarm's own transaction, so it
exists exactly when the change does (a rolled-back batch announces nothing, a committed one cannot be
lost to a crash); the worker (`worker.py`) routes and sends it afterwards.
"""

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import Alarm, NotifyTransition

Change = str  # "opened" | "escalated" | "cleared" | "test"


def new_uid() -> str:
    return uuid.uuid4().hex


def notification_id(uid: str) -> str:
    """The id receivers deduplicate on (the same for every resend of one notification)."""
    return f"efn_{uid}"


def record(
    session: Session, alarm: Alarm, change: Change, *, escalation: int = 0, now: datetime | None = None
) -> NotifyTransition:
    """Add the transition to the session (flushed with the alarm's transaction)."""
    row = NotifyTransition(
        uid=new_uid(),
        org_id=alarm.org_id,
        alarm_id=alarm.id,
        change=change,
        escalation=escalation,
        severity=alarm.severity,
        created_at=now or utc_now(),
    )
    session.add(row)
    return row


def record_cleared(session: Session, alarm: Alarm, now: datetime | None = None) -> None:
    """A `cleared` transition (routing sends it where the alarm's earlier notifications went)."""
    record(session, alarm, "cleared", now=now)
