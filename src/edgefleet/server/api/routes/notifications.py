"""Notifications: channels, rules, the delivery log, test-send, the bell's feed, Web Push subscriptions.

Reading is for every member of the organization (channel secrets are never returned); changing
channels and rules, and sending a test, needs the admin role.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from edgefleet.server.api.deps import AdminUser, ContextDep, CurrentUser, IdPath, SessionDep
from edgefleet.server.notify import service, vapid
from edgefleet.server.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    ChannelUpdate,
    DeliveryPublic,
    DeliveryStatus,
    Feed,
    FeedSeen,
    PushKey,
    PushSubscriptionCreate,
    PushSubscriptionPublic,
    RuleCreate,
    RulePublic,
    RuleUpdate,
    TestSent,
)

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("/channels")
def list_channels(principal: CurrentUser, session: SessionDep) -> list[ChannelPublic]:
    return service.list_channels(session, principal)


@router.post("/channels", status_code=status.HTTP_201_CREATED)
def add_channel(
    body: ChannelCreate, principal: AdminUser, session: SessionDep, context: ContextDep
) -> ChannelCreated:
    return service.create_channel(session, principal, body, context.settings.secret_key)


@router.get("/channels/{channel_id}")
def get_channel(channel_id: IdPath, principal: CurrentUser, session: SessionDep) -> ChannelPublic:
    return service.get_channel(session, principal, channel_id)


@router.patch("/channels/{channel_id}")
def update_channel(
    channel_id: IdPath, body: ChannelUpdate, principal: AdminUser, session: SessionDep, context: ContextDep
) -> ChannelPublic:
    return service.update_channel(session, principal, channel_id, body, context.settings.secret_key)


@router.delete("/channels/{channel_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_channel(channel_id: IdPath, principal: AdminUser, session: SessionDep) -> Response:
    service.delete_channel(session, principal, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/channels/{channel_id}/test", status_code=status.HTTP_202_ACCEPTED)
def test_channel(
    channel_id: IdPath, principal: AdminUser, session: SessionDep, context: ContextDep
) -> TestSent:
    """Queue a test notification to the channel; its delivery shows in the log like any other."""
    return service.test_channel(session, principal, channel_id, context.settings.secret_key)


@router.get("/rules")
def list_rules(principal: CurrentUser, session: SessionDep) -> list[RulePublic]:
    return [RulePublic.model_validate(r) for r in service.list_rules(session, principal)]


@router.post("/rules", status_code=status.HTTP_201_CREATED)
def add_rule(body: RuleCreate, principal: AdminUser, session: SessionDep) -> RulePublic:
    return RulePublic.model_validate(service.create_rule(session, principal, body))


@router.get("/rules/{rule_id}")
def get_rule(rule_id: IdPath, principal: CurrentUser, session: SessionDep) -> RulePublic:
    return RulePublic.model_validate(service.get_rule(session, principal, rule_id))


@router.patch("/rules/{rule_id}")
def update_rule(rule_id: IdPath, body: RuleUpdate, principal: AdminUser, session: SessionDep) -> RulePublic:
    return RulePublic.model_validate(service.update_rule(session, principal, rule_id, body))


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: IdPath, principal: AdminUser, session: SessionDep) -> Response:
    service.delete_rule(session, principal, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/deliveries")
def list_deliveries(
    principal: CurrentUser,
    session: SessionDep,
    channel_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryPublic]:
    return service.list_deliveries(session, principal, channel_id, status, limit)


@router.get("/feed")
def notification_feed(
    principal: CurrentUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> Feed:
    """The organization's latest alarm notifications and how many this user has not seen (the bell)."""
    return service.feed(session, principal, limit)


@router.post("/feed/seen", status_code=status.HTTP_204_NO_CONTENT)
def mark_feed_seen(body: FeedSeen, principal: CurrentUser, session: SessionDep) -> Response:
    service.mark_seen(session, principal, body.last_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/push/key")
def push_key(principal: CurrentUser, session: SessionDep, context: ContextDep) -> PushKey:
    """The server's VAPID public key (`applicationServerKey` for `pushManager.subscribe`)."""
    del principal
    return PushKey(public_key=vapid.public_key(session, context.settings.secret_key))


@router.get("/push/subscriptions")
def list_push_subscriptions(principal: CurrentUser, session: SessionDep) -> list[PushSubscriptionPublic]:
    return [PushSubscriptionPublic.model_validate(s) for s in service.my_subscriptions(session, principal)]


@router.post("/push/subscriptions", status_code=status.HTTP_201_CREATED)
def add_push_subscription(
    body: PushSubscriptionCreate, principal: CurrentUser, session: SessionDep, context: ContextDep
) -> PushSubscriptionPublic:
    """This browser's push subscription for the signed-in user (`PushSubscription.toJSON()`)."""
    allow_loopback = context.settings.notify_push_allow_loopback
    return PushSubscriptionPublic.model_validate(service.subscribe(session, principal, body, allow_loopback))


@router.delete("/push/subscriptions", status_code=status.HTTP_204_NO_CONTENT)
def remove_push_subscription(
    principal: CurrentUser, session: SessionDep, endpoint: Annotated[str, Query(max_length=1024)]
) -> Response:
    service.unsubscribe(session, principal, endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
