"""Channels, rules, deliveries, the bell's feed and push subscriptions, scoped to the caller's
organization (another organization's objects are 404). Admins change channels and rules; everyone
reads them (without secrets) and manages their own push subscriptions and bell."""

import secrets
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import (
    Alarm,
    NotifyChannel,
    NotifyDelivery,
    NotifyRule,
    NotifySeen,
    NotifyTransition,
    PushSubscription,
)
from edgefleet.server.errors import ConflictError, NotFoundError
from edgefleet.server.notify import config as channel_config
from edgefleet.server.notify import routing
from edgefleet.server.notify.channels import webpush
from edgefleet.server.notify.config import ChannelConfigError
from edgefleet.server.notify.outbox import notification_id
from edgefleet.server.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    ChannelUpdate,
    DeliveryPublic,
    Feed,
    FeedItem,
    PushSubscriptionCreate,
    RuleCreate,
    RuleUpdate,
    TestSent,
)
from edgefleet.server.notify.sealing import channel_scope, seal, unseal
from edgefleet.server.services import audit
from edgefleet.server.services.principal import Principal


# --- channels ------------------------------------------------------------------------------------
def public_channel(channel: NotifyChannel) -> ChannelPublic:
    public = ChannelPublic.model_validate(channel)
    return public.model_copy(
        update={
            "config": channel_config.public_part(channel.config),
            "secrets_set": channel.config.get("_set", []),
        }
    )


def _store(channel: NotifyChannel, kind: str, loaded: channel_config.ChannelConfig, key: SecretStr) -> None:
    public, secret_values = channel_config.split(kind, loaded)
    channel.config = {**public, **channel_config.shown(kind, secret_values), "_set": sorted(secret_values)}
    channel.secrets_sealed = (
        seal(key, channel_scope(channel.org_id), secret_values) if secret_values else None
    )


def _stored(channel: NotifyChannel, key: SecretStr) -> tuple[dict[str, Any], dict[str, Any]]:
    public = channel_config.public_part(channel.config)
    return public, unseal(key, channel_scope(channel.org_id), channel.secrets_sealed)


def list_channels(session: Session, principal: Principal) -> list[ChannelPublic]:
    query = select(NotifyChannel).where(NotifyChannel.org_id == principal.org_id).order_by(NotifyChannel.id)
    return [public_channel(c) for c in session.scalars(query)]


def _channel(session: Session, principal: Principal, channel_id: int) -> NotifyChannel:
    channel = session.get(NotifyChannel, channel_id)
    if channel is None or channel.org_id != principal.org_id:
        raise NotFoundError(f"no notification channel {channel_id}")
    return channel


def get_channel(session: Session, principal: Principal, channel_id: int) -> ChannelPublic:
    return public_channel(_channel(session, principal, channel_id))


def create_channel(
    session: Session, principal: Principal, body: ChannelCreate, key: SecretStr
) -> ChannelCreated:
    principal.require("admin")
    values = dict(body.config)
    generated = None
    if body.kind == "webhook" and not values.get("secret"):
        values["secret"] = generated = secrets.token_urlsafe(32)
    loaded = channel_config.parse(body.kind, values)
    channel = NotifyChannel(org_id=principal.org_id, name=body.name, kind=body.kind, enabled=body.enabled)
    _store(channel, body.kind, loaded, key)
    session.add(channel)
    session.flush()
    audit.record(
        session, principal.org_id, principal.user.id, "notify.channel.create", "notify_channel", channel.id
    )
    return ChannelCreated(**public_channel(channel).model_dump(), generated_secret=generated)


def update_channel(
    session: Session, principal: Principal, channel_id: int, body: ChannelUpdate, key: SecretStr
) -> ChannelPublic:
    principal.require("admin")
    channel = _channel(session, principal, channel_id)
    if body.config is not None:
        public, stored_secrets = _stored(channel, key)
        _store(
            channel,
            channel.kind,
            channel_config.merged(channel.kind, public, stored_secrets, body.config),
            key,
        )
    if body.name is not None:
        channel.name = body.name
    if body.enabled is not None:
        channel.enabled = body.enabled
    audit.record(
        session, principal.org_id, principal.user.id, "notify.channel.update", "notify_channel", channel.id
    )
    return public_channel(channel)


def delete_channel(session: Session, principal: Principal, channel_id: int) -> None:
    principal.require("admin")
    channel = _channel(session, principal, channel_id)
    for rule in session.scalars(select(NotifyRule).where(NotifyRule.org_id == principal.org_id)):
        rule.channel_ids = [c for c in rule.channel_ids if c != channel_id]
        rule.escalate_channel_ids = [c for c in rule.escalate_channel_ids if c != channel_id]
    session.delete(channel)
    audit.record(
        session, principal.org_id, principal.user.id, "notify.channel.delete", "notify_channel", channel_id
    )


def test_channel(session: Session, principal: Principal, channel_id: int, key: SecretStr) -> TestSent:
    """Queue a test notification to the channel; the worker sends it like any other."""
    principal.require("admin")
    channel = _channel(session, principal, channel_id)
    public, stored_secrets = _stored(channel, key)
    loaded = channel_config.parse(channel.kind, {**public, **stored_secrets})
    urls = len(loaded.urls) if isinstance(loaded, channel_config.AppriseConfig) else 0
    rows = routing.test_delivery(session, channel, urls, utc_now())
    transition = session.get(NotifyTransition, rows[0].transition_id) if rows else None
    if transition is None:
        raise ChannelConfigError("the channel has no recipient (for Web Push: no browser subscribed yet)")
    return TestSent(notification_id=notification_id(transition.uid), delivery_ids=[r.id for r in rows])


# --- rules ---------------------------------------------------------------------------------------
def _check_channels(session: Session, principal: Principal, ids: list[int]) -> None:
    for channel_id in ids:
        _channel(session, principal, channel_id)


def list_rules(session: Session, principal: Principal) -> list[NotifyRule]:
    query = select(NotifyRule).where(NotifyRule.org_id == principal.org_id).order_by(NotifyRule.id)
    return list(session.scalars(query))


def _rule(session: Session, principal: Principal, rule_id: int) -> NotifyRule:
    rule = session.get(NotifyRule, rule_id)
    if rule is None or rule.org_id != principal.org_id:
        raise NotFoundError(f"no notification rule {rule_id}")
    return rule


def get_rule(session: Session, principal: Principal, rule_id: int) -> NotifyRule:
    return _rule(session, principal, rule_id)


def create_rule(session: Session, principal: Principal, body: RuleCreate) -> NotifyRule:
    principal.require("admin")
    _check_channels(session, principal, [*body.channel_ids, *(body.escalate_channel_ids or [])])
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    rule = NotifyRule(org_id=principal.org_id, **values)
    rule.quiet_bypass_severity = body.quiet_bypass_severity
    session.add(rule)
    session.flush()
    audit.record(session, principal.org_id, principal.user.id, "notify.rule.create", "notify_rule", rule.id)
    return rule


def update_rule(session: Session, principal: Principal, rule_id: int, body: RuleUpdate) -> NotifyRule:
    principal.require("admin")
    rule = _rule(session, principal, rule_id)
    changes = body.model_dump(exclude_unset=True)
    _check_channels(
        session,
        principal,
        [*(changes.get("channel_ids") or []), *(changes.get("escalate_channel_ids") or [])],
    )
    for name, value in changes.items():
        setattr(rule, name, value if value is not None or name in _NULLABLE else getattr(rule, name))
    if (rule.quiet_start is None) != (rule.quiet_end is None):
        raise ChannelConfigError("quiet hours need both quiet_start and quiet_end")
    audit.record(session, principal.org_id, principal.user.id, "notify.rule.update", "notify_rule", rule.id)
    return rule


_NULLABLE = frozenset({"quiet_start", "quiet_end", "quiet_bypass_severity", "escalate_after_s"})


def delete_rule(session: Session, principal: Principal, rule_id: int) -> None:
    principal.require("admin")
    session.delete(_rule(session, principal, rule_id))
    audit.record(session, principal.org_id, principal.user.id, "notify.rule.delete", "notify_rule", rule_id)


# --- deliveries ----------------------------------------------------------------------------------
def list_deliveries(
    session: Session, principal: Principal, channel_id: int | None, status: str | None, limit: int
) -> list[DeliveryPublic]:
    query = (
        select(NotifyDelivery, NotifyChannel.name, NotifyTransition, Alarm.device_id)
        .join(NotifyChannel, NotifyDelivery.channel_id == NotifyChannel.id)
        .join(NotifyTransition, NotifyDelivery.transition_id == NotifyTransition.id)
        .outerjoin(Alarm, NotifyTransition.alarm_id == Alarm.id)
        .where(NotifyDelivery.org_id == principal.org_id)
    )
    if channel_id is not None:
        query = query.where(NotifyDelivery.channel_id == channel_id)
    if status is not None:
        query = query.where(NotifyDelivery.status == status)
    rows = session.execute(query.order_by(NotifyDelivery.id.desc()).limit(limit))
    return [
        DeliveryPublic(
            id=d.id,
            channel_id=d.channel_id,
            channel_name=name,
            rule_id=d.rule_id,
            recipient=d.recipient,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            sent_at=d.sent_at,
            last_error=d.last_error,
            created_at=d.created_at,
            notification_id=notification_id(t.uid),
            change=t.change,
            alarm_id=t.alarm_id,
            device_id=device_id,
        )
        for d, name, t, device_id in rows
    ]


# --- the bell ------------------------------------------------------------------------------------
def feed(session: Session, principal: Principal, limit: int = 20) -> Feed:
    """The organization's latest alarm notifications, and how many the user has not seen."""
    org = principal.org_id
    seen = session.get(NotifySeen, principal.user.id)
    last_seen = seen.last_transition_id if seen else 0
    alarm_changes = NotifyTransition.change != "test"
    query = (
        select(NotifyTransition, Alarm.device_id, Alarm.kind)
        .outerjoin(Alarm, NotifyTransition.alarm_id == Alarm.id)
        .where(NotifyTransition.org_id == org, alarm_changes)
        .order_by(NotifyTransition.id.desc())
        .limit(limit)
    )
    items = [
        FeedItem(
            id=t.id,
            notification_id=notification_id(t.uid),
            change=t.change,
            severity=t.severity,
            alarm_id=t.alarm_id,
            device_id=device_id,
            kind=kind,
            created_at=t.created_at,
        )
        for t, device_id, kind in session.execute(query)
    ]
    unseen = session.scalar(
        select(func.count()).where(
            NotifyTransition.org_id == org, alarm_changes, NotifyTransition.id > last_seen
        )
    )
    return Feed(items=items, unseen=int(unseen or 0))


def mark_seen(session: Session, principal: Principal, last_id: int) -> None:
    seen = session.get(NotifySeen, principal.user.id)
    if seen is None:
        session.add(NotifySeen(user_id=principal.user.id, last_transition_id=last_id))
    else:
        seen.last_transition_id = max(seen.last_transition_id, last_id)


# --- Web Push subscriptions ----------------------------------------------------------------------
def subscribe(
    session: Session, principal: Principal, body: PushSubscriptionCreate, allow_loopback: bool = False
) -> PushSubscription:
    """The browser's subscription for this user (a browser that subscribes again replaces its own;
    another user's is left alone). Endpoints on non-public addresses are refused (SSRF)."""
    try:
        webpush.check_endpoint(body.endpoint, allow_loopback)
    except webpush.EndpointError as err:
        raise ChannelConfigError(str(err)) from err
    existing = session.scalar(select(PushSubscription).where(PushSubscription.endpoint == body.endpoint))
    if existing is not None and existing.user_id != principal.user.id:
        raise ConflictError("this push endpoint is registered by another account")
    if existing is not None:
        session.delete(existing)
        session.flush()
    row = PushSubscription(
        user_id=principal.user.id, org_id=principal.org_id, endpoint=body.endpoint,
        p256dh=body.keys.p256dh, auth=body.keys.auth,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def unsubscribe(session: Session, principal: Principal, endpoint: str) -> None:
    session.execute(
        delete(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.user_id == principal.user.id
        )
    )


def my_subscriptions(session: Session, principal: Principal) -> list[PushSubscription]:
    query = select(PushSubscription).where(PushSubscription.user_id == principal.user.id)
    return list(session.scalars(query.order_by(PushSubscription.id)))
