"""Which rules an alarm matches, and quiet hours: pure functions of a rule, an alarm and a time."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edgefleet.server.db.models import Alarm, Device, NotifyRule

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlarmFacts:
    """What rules look at: the alarm's kind and severity, its device, the device's tags and model."""

    kind: str
    severity: str
    device_id: str
    tags: frozenset[str]
    model_id: str | None

    @classmethod
    def of(cls, alarm: Alarm, device: Device | None) -> "AlarmFacts":
        return cls(
            kind=alarm.kind,
            severity=alarm.severity,
            device_id=alarm.device_id,
            tags=frozenset(device.tags or []) if device else frozenset(),
            model_id=device.model_id if device else None,
        )


def matches(rule: NotifyRule, facts: AlarmFacts) -> bool:
    """Every criterion the rule sets must hold (an empty list sets none); within one, any value."""
    if not rule.enabled:
        return False
    if rule.kinds and facts.kind not in rule.kinds:
        return False
    if SEVERITY_RANK.get(facts.severity, 1) < SEVERITY_RANK.get(rule.min_severity, 0):
        return False
    if rule.device_ids and facts.device_id not in rule.device_ids:
        return False
    if rule.tags and not facts.tags.intersection(rule.tags):
        return False
    return not (rule.model_ids and facts.model_id not in rule.model_ids)


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from err


def quiet_until(rule: NotifyRule, severity: str, now: datetime) -> datetime | None:
    """The end of the rule's quiet hours when `now` falls inside them and `severity` does not bypass
    them; None when the notification may go now. Quiet hours may span midnight (22:00-06:00); an
    equal start and end means none."""
    if not rule.quiet_start or not rule.quiet_end:
        return None
    bypass = rule.quiet_bypass_severity
    if bypass is not None and SEVERITY_RANK.get(severity, 1) >= SEVERITY_RANK.get(bypass, 2):
        return None
    start, end = parse_hhmm(rule.quiet_start), parse_hhmm(rule.quiet_end)
    if start == end:
        return None
    tz = zone(rule.quiet_timezone)
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    # wall time at the end, resolved in the zone (a DST gap moves it by the gap, never before now)
    return max(datetime.combine(end_day, end, tzinfo=tz).astimezone(now.tzinfo), now)
