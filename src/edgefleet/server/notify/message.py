"""What a notification says: the contract's `AlarmNotification`, built when a delivery attempt is claimed.
The id, time, change and acknowledge link come from the outbox row (the same on every resend); the
alarm's and device's current facts (acknowledged, event count, name, tags) are read at that moment."""

from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.orm import Session

from edgefleet.contracts import (
    AlarmNotification,
    NotificationAlarm,
    NotificationDevice,
    NotificationLinks,
    NotificationOrganization,
)
from edgefleet.server.db.models import Alarm, Device, NotifyTransition, Organization
from edgefleet.server.notify import ack_links
from edgefleet.server.notify.outbox import notification_id

_VERBS = {"opened": "OPEN", "escalated": "ESCALATED", "cleared": "CLEARED", "test": "TEST"}


@dataclass(frozen=True)
class LinkSettings:
    public_url: str
    secret_key: SecretStr
    ack_ttl_s: int


def _state(alarm: Alarm) -> str:
    if alarm.cleared_at is not None:
        return "cleared"
    return "acknowledged" if alarm.acked_at is not None else "open"


def build(session: Session, transition: NotifyTransition, links: LinkSettings) -> AlarmNotification:
    org = session.get(Organization, transition.org_id)
    organization = NotificationOrganization(id=transition.org_id, name=org.name if org else "")
    alarm = session.get(Alarm, transition.alarm_id) if transition.alarm_id is not None else None
    if alarm is None:
        return AlarmNotification(
            id=notification_id(transition.uid),
            ts=transition.created_at,
            change="test",
            organization=organization,
            title="[edgefleet] test notification",
            text=f"A test notification of {organization.name}: this channel works.",
        )
    device = session.get(Device, alarm.device_id)
    cleared = transition.change == "cleared"
    body_alarm = NotificationAlarm(
        id=alarm.id,
        device_id=alarm.device_id,
        kind=alarm.kind,
        severity=transition.severity,  # type: ignore[arg-type]
        state="cleared" if cleared else ("acknowledged" if _state(alarm) == "acknowledged" else "open"),
        opened_at=alarm.opened_at,
        cleared_at=alarm.cleared_at if cleared else None,
        clear_reason=alarm.clear_reason if cleared else None,
        event_count=alarm.event_count,
    )
    body_device = None
    if device is not None:
        body_device = NotificationDevice(
            id=device.id,
            name=device.name,
            kind=device.kind,
            tags=list(device.tags or []),
            model_id=device.model_id,
            model_version=device.model_version,
        )
    base = links.public_url.rstrip("/")
    link_set = NotificationLinks(
        alarm=f"{base}/alarms?alarm={alarm.id}",
        acknowledge=None
        if cleared
        else ack_links.make_link(links.public_url, links.secret_key, transition, links.ack_ttl_s),
    )
    name = device.name if device is not None and device.name != alarm.device_id else None
    where = f"{alarm.device_id} ({name})" if name else alarm.device_id
    title = f"[edgefleet] {_VERBS[transition.change]} {transition.severity} {alarm.kind} alarm on {where}"
    return AlarmNotification(
        id=notification_id(transition.uid),
        ts=transition.created_at,
        change=transition.change,  # type: ignore[arg-type]
        organization=organization,
        alarm=body_alarm,
        device=body_device,
        escalation=transition.escalation,
        title=title,
        text=_text(transition, alarm, where, organization.name),
        links=link_set,
    )


def _text(transition: NotifyTransition, alarm: Alarm, where: str, org_name: str) -> str:
    lines = {
        "opened": f"A {transition.severity} {alarm.kind} alarm opened on {where}.",
        "escalated": f"The {transition.severity} {alarm.kind} alarm on {where} is still not acknowledged.",
        "cleared": f"The {alarm.kind} alarm on {where} cleared ({alarm.clear_reason or 'cleared'}).",
    }
    opened = alarm.opened_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join(
        [
            lines[transition.change],
            f"Organization: {org_name}",
            f"Opened: {opened} (device time); events so far: {alarm.event_count}",
            f"Alarm id: {alarm.id}",
        ]
    )


def plain_text(note: AlarmNotification) -> str:
    """The body of an email or a chat message: the text, then the links."""
    parts = [note.text]
    if note.links.alarm:
        parts.append(f"Open in the dashboard: {note.links.alarm}")
    if note.links.acknowledge:
        parts.append(f"Acknowledge (opens a confirmation page): {note.links.acknowledge}")
    parts.append(f"Notification id: {note.id}")
    return "\n\n".join(parts)
