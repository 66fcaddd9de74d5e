"""Alarms: one open alarm per device and kind; events attach; ack/clear by users or automatically.

Alarm timing runs on the server's clock: an alarm's "normal since" is when the server received the
first event saying the condition cleared, and auto-clear compares it with the server's time, so a
device whose clock is wrong (unsynced, a wrong time server) can neither clear its alarms early nor
keep them open. `opened_at` and `last_event_at` are the events' device times, for display.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import Alarm, Device
from edgefleet.server.errors import ConflictError, NotFoundError
from edgefleet.server.notify import outbox
from edgefleet.server.services import audit
from edgefleet.server.services.principal import Principal

# commissioning: a device whose new baseline hides its trained faults (`blind`) until it re-commissions
ALARM_KINDS = frozenset({"anomaly", "rule", "sensor_fault", "commissioning"})
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
AlarmState = Literal["open", "acknowledged", "cleared"]


@dataclass(frozen=True)
class IncomingEvent:
    org_id: int
    device_id: str
    kind: str
    active: bool
    severity: str
    ts: datetime
    """The device's time (display: `opened_at`, `last_event_at`)."""
    received_at: datetime | None = None
    """The server's time of receipt (alarm timing); None only for callers that have none (the ingest
    of events and the drift monitor's telemetry rows always set it)."""


@dataclass(frozen=True)
class AlarmChange:
    alarm: Alarm
    change: Literal["opened", "updated", "cleared"]
    notify: bool = False
    """False while the device's cooldown runs: a hint for the live stream (the outbox always gets the
    opening; notification routing applies its own cooldown per device and kind)."""


class AlarmTracker:
    """Applies ingested events to alarms inside one ingest transaction."""

    def __init__(self, session: Session, cooldown_s: float) -> None:
        self._session = session
        self._cooldown = timedelta(seconds=cooldown_s)
        self._open: dict[tuple[str, str], Alarm | None] = {}

    def _find_open(self, device_id: str, kind: str) -> Alarm | None:
        key = (device_id, kind)
        if key not in self._open:
            self._open[key] = self._session.scalar(
                select(Alarm).where(
                    Alarm.device_id == device_id, Alarm.kind == kind, Alarm.cleared_at.is_(None)
                )
            )
        return self._open[key]

    def preload(self, kind: str, device_ids: Iterable[str]) -> dict[str, Alarm]:
        """Look up the open alarms of one kind for many devices in one query (so `apply` needs none);
        returns those found by device id."""
        ids = [d for d in dict.fromkeys(device_ids) if (d, kind) not in self._open]
        query = select(Alarm).where(Alarm.device_id.in_(ids), Alarm.kind == kind, Alarm.cleared_at.is_(None))
        found = {a.device_id: a for a in self._session.scalars(query)} if ids else {}
        for device_id in ids:
            self._open[(device_id, kind)] = found.get(device_id)
        return {d: a for (d, k), a in self._open.items() if k == kind and a is not None}

    def apply(
        self, event: IncomingEvent, kinds: frozenset[str] = ALARM_KINDS
    ) -> tuple[int | None, AlarmChange | None]:
        """Attach one newly stored event to its alarm; returns (alarm id, change to announce).
        `kinds` are the kinds that raise alarms (server-side conditions such as drift pass theirs)."""
        if event.kind not in kinds:
            return None, None
        alarm = self._find_open(event.device_id, event.kind)
        if not event.active:
            if alarm is None:
                return None, None
            alarm.normal_since = alarm.normal_since or event.received_at or event.ts
            return alarm.id, None
        if alarm is not None:
            alarm.event_count += 1
            alarm.last_event_at = max(alarm.last_event_at, event.ts)
            alarm.normal_since = None
            if _SEVERITY_RANK.get(event.severity, 1) > _SEVERITY_RANK.get(alarm.severity, 1):
                alarm.severity = event.severity
            return alarm.id, AlarmChange(alarm, "updated")
        alarm = Alarm(
            org_id=event.org_id,
            device_id=event.device_id,
            kind=event.kind,
            severity=event.severity,
            opened_at=event.ts,
            last_event_at=event.ts,
            event_count=1,
        )
        self._session.add(alarm)
        self._session.flush()
        self._open[(event.device_id, event.kind)] = alarm
        notify = self._may_notify(event.device_id)
        # the notification outbox, in this same transaction (server/notify): always, so every alarm
        # can escalate and clear; routing applies the cooldown per device and kind
        outbox.record(self._session, alarm, "opened")
        return alarm.id, AlarmChange(alarm, "opened", notify=notify)

    def _may_notify(self, device_id: str) -> bool:
        device = self._session.get(Device, device_id)
        if device is None:
            return False
        now = utc_now()
        if device.last_notified_at is not None and now - device.last_notified_at < self._cooldown:
            return False
        device.last_notified_at = now
        return True


def auto_clear(session: Session, clear_after_s: float, now: datetime | None = None) -> list[Alarm]:
    """Clear alarms whose device has reported normal for `clear_after_s` of server time."""
    now = now or utc_now()
    cutoff = now - timedelta(seconds=clear_after_s)
    alarms = list(
        session.scalars(select(Alarm).where(Alarm.cleared_at.is_(None), Alarm.normal_since <= cutoff))
    )
    for alarm in alarms:
        alarm.cleared_at = now
        alarm.clear_reason = "auto"
        outbox.record_cleared(session, alarm, now)
        audit.record(
            session, alarm.org_id, None, "alarm.auto_clear", "alarm", alarm.id, device_id=alarm.device_id
        )
    return alarms


def state_of(alarm: Alarm) -> AlarmState:
    if alarm.cleared_at is not None:
        return "cleared"
    return "acknowledged" if alarm.acked_at is not None else "open"


def list_alarms(
    session: Session, org_id: int, state: AlarmState | None, device_id: str | None, limit: int
) -> list[Alarm]:
    query = select(Alarm).where(Alarm.org_id == org_id)
    if device_id:
        query = query.where(Alarm.device_id == device_id)
    if state == "cleared":
        query = query.where(Alarm.cleared_at.is_not(None))
    elif state == "open":
        query = query.where(Alarm.cleared_at.is_(None), Alarm.acked_at.is_(None))
    elif state == "acknowledged":
        query = query.where(Alarm.cleared_at.is_(None), Alarm.acked_at.is_not(None))
    return list(session.scalars(query.order_by(Alarm.id.desc()).limit(limit)))


def _get(session: Session, principal: Principal, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or alarm.org_id != principal.org_id:
        raise NotFoundError(f"no alarm {alarm_id}")
    return alarm


def acknowledge(session: Session, principal: Principal, alarm_id: int, note: str | None = None) -> Alarm:
    principal.require("admin")
    alarm = _get(session, principal, alarm_id)
    if alarm.cleared_at is not None:
        raise ConflictError(f"alarm {alarm_id} is cleared already")
    if alarm.acked_at is None:
        alarm.acked_at = utc_now()
        alarm.acked_by = principal.user.id
        alarm.note = note or alarm.note
        detail = {"note": note} if note else {}
        audit.record(session, principal.org_id, principal.user.id, "alarm.ack", "alarm", alarm.id, **detail)
    return alarm


def clear(session: Session, principal: Principal, alarm_id: int, note: str | None = None) -> Alarm:
    principal.require("admin")
    alarm = _get(session, principal, alarm_id)
    if alarm.cleared_at is None:
        alarm.cleared_at = utc_now()
        alarm.cleared_by = principal.user.id
        alarm.clear_reason = "user"
        alarm.note = note or alarm.note
        outbox.record_cleared(session, alarm)
        detail = {"note": note} if note else {}
        audit.record(session, principal.org_id, principal.user.id, "alarm.clear", "alarm", alarm.id, **detail)
    return alarm
