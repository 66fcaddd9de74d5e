"""From outbox rows to deliveries: which channels (and recipients) get a transition, when (quiet
hours hold a delivery until they end), and escalations of alarms nobody acknowledged.

Every step is idempotent across workers and crashes: a transition is routed by whoever marks it
routed first (a conditional UPDATE), deliveries are unique per (transition, channel, recipient), an
escalation per (alarm, rule).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from edgefleet.server.db.models import (
    Alarm,
    Device,
    NotifyChannel,
    NotifyDelivery,
    NotifyRule,
    NotifyTransition,
    PushSubscription,
    User,
)
from edgefleet.server.notify import outbox
from edgefleet.server.notify.rules import AlarmFacts, matches, quiet_until

ROUTE_BATCH = 100


@dataclass(frozen=True)
class Target:
    channel_id: int
    rule_id: int | None
    due: datetime
    held: bool


def _recipients(session: Session, channel: NotifyChannel, url_count: int | None) -> list[str]:
    if channel.kind == "apprise":  # unreadable settings: one delivery, which fails visibly when claimed
        return [f"url:{n}" for n in range(1 if url_count is None else url_count)]
    if channel.kind == "webpush":
        query = (
            select(PushSubscription.id)
            .join(User, PushSubscription.user_id == User.id)
            .where(PushSubscription.org_id == channel.org_id, User.is_active, User.org_id == channel.org_id)
        )
        return [f"push:{sub_id}" for sub_id in session.scalars(query.order_by(PushSubscription.id))]
    return [""]


def _targets(session: Session, transition: NotifyTransition, alarm: Alarm, now: datetime) -> list[Target]:
    rules = {
        r.id: r for r in session.scalars(select(NotifyRule).where(NotifyRule.org_id == transition.org_id))
    }
    facts = AlarmFacts.of(alarm, session.get(Device, alarm.device_id))
    facts = AlarmFacts(facts.kind, transition.severity, facts.device_id, facts.tags, facts.model_id)
    chosen: list[tuple[NotifyRule | None, int]] = []
    if transition.change == "opened":
        chosen = [(rule, ch) for rule in rules.values() if matches(rule, facts) for ch in rule.channel_ids]
    elif transition.change == "escalated":
        rule = rules.get(transition.escalation)
        if rule is not None and rule.enabled:
            chosen = [(rule, ch) for ch in rule.escalate_channel_ids]
    elif transition.change == "cleared":  # where the opening (or an escalation) went
        earlier = session.execute(
            select(NotifyDelivery.channel_id, NotifyDelivery.rule_id)
            .join(NotifyTransition, NotifyDelivery.transition_id == NotifyTransition.id)
            .where(NotifyTransition.alarm_id == alarm.id, NotifyTransition.id != transition.id)
            .distinct()
        )
        for channel_id, rule_id in earlier:
            rule = rules.get(rule_id) if rule_id is not None else None
            if rule is None or rule.notify_cleared:
                chosen.append((rule, channel_id))
    targets: dict[int, Target] = {}
    for rule, channel_id in chosen:
        held_until = quiet_until(rule, transition.severity, now) if rule is not None else None
        target = Target(channel_id, rule.id if rule else None, held_until or now, held_until is not None)
        if channel_id not in targets or target.due < targets[channel_id].due:  # the earliest rule wins
            targets[channel_id] = target
    return list(targets.values())


def _skip_if_never_sent(session: Session, alarm: Alarm, channel_id: int, now: datetime) -> bool:
    """An alarm that cleared while everything announcing it to this channel is still held (quiet
    hours): nothing is sent at all. True when that was the case."""
    earlier = list(
        session.scalars(
            select(NotifyDelivery)
            .join(NotifyTransition, NotifyDelivery.transition_id == NotifyTransition.id)
            .where(NotifyTransition.alarm_id == alarm.id, NotifyDelivery.channel_id == channel_id)
        )
    )
    if not earlier or any(d.status != "held" for d in earlier):
        return False
    for delivery in earlier:
        delivery.status, delivery.last_error = (
            "skipped",
            f"the alarm cleared during quiet hours ({now:%H:%M} UTC)",
        )
    return True


def _in_cooldown(session: Session, transition: NotifyTransition, alarm: Alarm, cooldown_s: float) -> bool:
    """Whether an alarm of the same device and kind had its opening announced (deliveries written)
    less than `cooldown_s` before this one: a flapping condition notifies once per cooldown."""
    if cooldown_s <= 0:
        return False
    earlier = aliased(Alarm)
    since = transition.created_at - timedelta(seconds=cooldown_s)
    return bool(
        session.scalar(
            select(
                exists()
                .where(
                    NotifyTransition.id != transition.id,
                    NotifyTransition.change == "opened",
                    NotifyTransition.created_at >= since,
                    NotifyTransition.created_at <= transition.created_at,
                    earlier.id == NotifyTransition.alarm_id,
                    earlier.device_id == alarm.device_id,
                    earlier.kind == alarm.kind,
                )
                .where(exists().where(NotifyDelivery.transition_id == NotifyTransition.id))
            )
        )
    )


def route(
    session: Session,
    transition: NotifyTransition,
    now: datetime,
    url_counts: dict[int, int | None],
    cooldown_s: float = 0.0,
) -> int:
    """Claim `transition` and write its deliveries; returns how many (0 when another worker routed it).
    `url_counts`: the number of URLs of each Apprise channel (they are sealed; None: unreadable).
    `cooldown_s`: an opening within this of an announced one of the same device and kind is not sent
    (the alarm still escalates, and its clearing goes wherever an escalation went)."""
    claimed = session.execute(
        update(NotifyTransition)
        .where(NotifyTransition.id == transition.id, NotifyTransition.routed_at.is_(None))
        .values(routed_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return 0
    alarm = session.get(Alarm, transition.alarm_id) if transition.alarm_id is not None else None
    if alarm is None:  # a test notification gets its delivery when it is made
        return 0
    if transition.change == "opened" and _in_cooldown(session, transition, alarm, cooldown_s):
        return 0
    count = 0
    for target in _targets(session, transition, alarm, now):
        channel = session.get(NotifyChannel, target.channel_id)
        if channel is None or channel.org_id != transition.org_id or not channel.enabled:
            continue
        if transition.change == "cleared" and _skip_if_never_sent(session, alarm, channel.id, now):
            continue
        for recipient in _recipients(session, channel, url_counts.get(channel.id)):
            session.add(
                NotifyDelivery(
                    org_id=transition.org_id,
                    transition_id=transition.id,
                    channel_id=channel.id,
                    rule_id=target.rule_id,
                    recipient=recipient,
                    status="held" if target.held else "pending",
                    next_attempt_at=target.due,
                    last_error=f"held by quiet hours until {target.due:%Y-%m-%d %H:%M} UTC"
                    if target.held
                    else None,
                )
            )
            count += 1
    return count


def unrouted(session: Session, limit: int = ROUTE_BATCH) -> list[NotifyTransition]:
    query = select(NotifyTransition).where(NotifyTransition.routed_at.is_(None)).order_by(NotifyTransition.id)
    return list(session.scalars(query.limit(limit)))


def escalate(session: Session, now: datetime) -> int:
    """Write an `escalated` transition for each alarm still open and unacknowledged `escalate_after_s`
    after its opening was announced, once per matching rule with an escalation step."""
    rules = session.scalars(
        select(NotifyRule).where(NotifyRule.enabled, NotifyRule.escalate_after_s.is_not(None))
    )
    opened = aliased(NotifyTransition)
    escalated = aliased(NotifyTransition)
    count = 0
    for rule in list(rules):
        if not rule.escalate_channel_ids or rule.escalate_after_s is None:
            continue
        due = now - timedelta(seconds=rule.escalate_after_s)
        candidates = session.scalars(
            select(Alarm)
            .join(opened, and_(opened.alarm_id == Alarm.id, opened.change == "opened"))
            .where(
                Alarm.org_id == rule.org_id,
                Alarm.cleared_at.is_(None),
                Alarm.acked_at.is_(None),
                opened.created_at <= due,
                ~exists().where(
                    escalated.alarm_id == Alarm.id,
                    escalated.change == "escalated",
                    escalated.escalation == rule.id,
                ),
            )
        )
        for alarm in list(candidates):
            if not matches(rule, AlarmFacts.of(alarm, session.get(Device, alarm.device_id))):
                continue
            try:
                with session.begin_nested():  # another worker may have written it meanwhile
                    outbox.record(session, alarm, "escalated", escalation=rule.id, now=now)
            except IntegrityError:
                continue
            count += 1
    return count


def test_delivery(
    session: Session, channel: NotifyChannel, url_count: int, now: datetime
) -> list[NotifyDelivery]:
    """A test notification to one channel: its transition (no alarm) and its deliveries, sent by the
    worker like any other, so the delivery log shows it."""
    transition = NotifyTransition(
        uid=outbox.new_uid(), org_id=channel.org_id, alarm_id=None, change="test", severity="info",
        created_at=now, routed_at=now,
    )  # fmt: skip
    session.add(transition)
    session.flush()
    rows = [
        NotifyDelivery(
            org_id=channel.org_id,
            transition_id=transition.id,
            channel_id=channel.id,
            recipient=recipient,
            status="pending",
            next_attempt_at=now,
        )
        for recipient in _recipients(session, channel, url_count)
    ]
    session.add_all(rows)
    session.flush()
    return rows
