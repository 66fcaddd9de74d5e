"""The notification worker: routes new outbox rows, escalates, and sends due deliveries with retries.

A pass (`run_once`, with the clock as a parameter so tests control time):
1. route unrouted transitions into deliveries (`routing.route`) and write due escalations;
2. claim due deliveries, at most as many as it sends at once (`SENDERS`, so no claim waits in a queue
   while its lease runs): a conditional UPDATE per row (pending/held and due, or `sending` with a
   lapsed lease) sets `sending`, a lease and the attempt number, and commits; so two workers never
   send the same delivery at once, and one killed mid-send leaves it to be sent again after the lease;
3. send the claimed ones concurrently (threads, each with a timeout), each right after renewing its
   lease with an UPDATE conditioned on the claim (a claim another worker took over is not sent);
4. record each outcome: `sent`, or `pending` again after a backoff (doubling from
   `notify_retry_base_s` to `notify_retry_max_s`), or `failed` after `notify_max_attempts` or a
   permanent error; the channel keeps its last success and last error.
A delivery is sent at least once; the notification's id is the same on every resend.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import AlarmNotification, utc_now
from edgefleet.server.db import faults, transaction
from edgefleet.server.db.models import (
    AckLinkUse,
    Alarm,
    NotifyChannel,
    NotifyDelivery,
    NotifyTransition,
    PushSubscription,
)
from edgefleet.server.notify import config as channel_config
from edgefleet.server.notify import message, routing, vapid
from edgefleet.server.notify.channels import apprise_urls, email, mqtt_north, webhook, webpush
from edgefleet.server.notify.channels.base import Outgoing, SendError, short
from edgefleet.server.notify.northbound import StatePublisher
from edgefleet.server.notify.sealing import channel_scope, unseal
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)
SENDERS = 8
CLAIM_BATCH = SENDERS
"""Claimed per pass: no more than are sent at once, so every claim's lease starts running at its send."""
KEEP_DAYS = 90
"""The delivery log and the bell keep this long (an open alarm's notifications stay)."""
LOST_CLAIM = SendError("another worker took the delivery over (its lease had lapsed)")


@dataclass
class PassResult:
    routed: int = 0
    escalated: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    delivery_id: int
    attempts: int
    channel_id: int
    kind: str
    config: channel_config.ChannelConfig
    out: Outgoing
    subscription: webpush.Subscription | None = None
    subscription_id: int | None = None


class NotifyWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: ServerSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.links = mqtt_north.MqttLinks(settings.notify_ca_file)
        self.states = StatePublisher(
            self.links, settings.public_url, settings.notify_send_timeout_s, self._mqtt_config
        )
        self._link_settings = message.LinkSettings(
            settings.public_url, settings.secret_key, settings.notify_ack_link_ttl_s
        )
        self._last_cleanup: datetime | None = None
        self._last_states: float | None = None

    # --- channels -------------------------------------------------------------------------------
    def load_config(self, channel: NotifyChannel) -> channel_config.ChannelConfig:
        secrets = unseal(self.settings.secret_key, channel_scope(channel.org_id), channel.secrets_sealed)
        return channel_config.parse(channel.kind, {**channel_config.public_part(channel.config), **secrets})

    def _mqtt_config(self, channel: NotifyChannel) -> channel_config.MqttConfig | None:
        try:
            loaded = self.load_config(channel)
        except Exception as err:  # a broken channel must not stop the others
            log.warning("notification channel %d cannot be loaded: %s", channel.id, err)
            return None
        return loaded if isinstance(loaded, channel_config.MqttConfig) else None

    def url_counts(self, session: Session, org_id: int) -> dict[int, int | None]:
        """URLs per Apprise channel; None for a channel whose settings cannot be read (its delivery
        fails visibly when claimed; the other channels are routed as usual)."""
        counts: dict[int, int | None] = {}
        query = select(NotifyChannel).where(NotifyChannel.org_id == org_id, NotifyChannel.kind == "apprise")
        for channel in session.scalars(query):
            try:
                loaded = self.load_config(channel)
            except Exception as err:  # a broken channel must not stop the others
                log.warning("notification channel %d cannot be loaded: %s", channel.id, type(err).__name__)
                counts[channel.id] = None
                continue
            counts[channel.id] = len(loaded.urls) if isinstance(loaded, channel_config.AppriseConfig) else 0
        return counts

    def _route_all(self, session: Session, now: datetime) -> int:
        """Route every unrouted transition, each in a savepoint: one that fails (a bug, bad data) is
        logged and marked routed without deliveries, and the others (other organizations') go on."""
        routed = 0
        cooldown_s = self.settings.alarm_notify_cooldown_s
        for transition in routing.unrouted(session):
            transition_id = transition.id
            try:
                with session.begin_nested():
                    counts = self.url_counts(session, transition.org_id)
                    routed += routing.route(session, transition, now, counts, cooldown_s)
            except Exception as err:
                if faults.diagnose(err).retry:  # the database itself (down, read-only): the pass retries
                    raise
                log.exception("notification %d cannot be routed; it is skipped", transition_id)
                session.execute(
                    update(NotifyTransition)
                    .where(NotifyTransition.id == transition_id, NotifyTransition.routed_at.is_(None))
                    .values(routed_at=now)
                )
        return routed

    # --- one pass -------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> PassResult:
        """One pass; `now` (default: the clock) decides what is due, and when retries come."""
        now_given = now is not None
        now = now or self.clock()
        result = PassResult()
        with transaction(self.sessions) as session:
            result.routed += self._route_all(session, now)
            result.escalated = routing.escalate(session, now)
        if result.escalated:  # route them in this pass
            with transaction(self.sessions) as session:
                result.routed += self._route_all(session, now)
        jobs = self._claim(now)
        outcomes: list[SendError | None] = []
        pass_clock: Callable[[], datetime] = (lambda: now) if now_given else self.clock
        if jobs:  # threads only while there is something to send
            with ThreadPoolExecutor(min(SENDERS, len(jobs)), thread_name_prefix="notify-send") as pool:
                outcomes = list(pool.map(lambda job: self._renew_and_send(job, pass_clock()), jobs))
        self._record(jobs, outcomes, result, pass_clock())
        self._cleanup(now)
        return result

    def _claim(self, now: datetime) -> list[Job]:
        due = or_(
            and_(NotifyDelivery.status.in_(("pending", "held")), NotifyDelivery.next_attempt_at <= now),
            and_(NotifyDelivery.status == "sending", NotifyDelivery.lease_until <= now),
        )
        lease = now + timedelta(seconds=self.settings.notify_lease_s)
        jobs: list[Job] = []
        with transaction(self.sessions) as session:
            ids = list(
                session.scalars(
                    select(NotifyDelivery.id)
                    .where(due)
                    .order_by(NotifyDelivery.next_attempt_at)
                    .limit(CLAIM_BATCH)
                )
            )
            notes: dict[int, AlarmNotification] = {}
            for delivery_id in ids:
                claimed = session.execute(
                    update(NotifyDelivery)
                    .where(NotifyDelivery.id == delivery_id, due)
                    .values(status="sending", lease_until=lease, attempts=NotifyDelivery.attempts + 1)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                delivery = session.get(NotifyDelivery, delivery_id)
                assert delivery is not None
                session.refresh(delivery)
                job = self._job(session, delivery, notes)
                if job is not None:
                    jobs.append(job)
        return jobs

    def _job(
        self, session: Session, delivery: NotifyDelivery, notes: dict[int, AlarmNotification]
    ) -> Job | None:
        channel = session.get(NotifyChannel, delivery.channel_id)
        transition = session.get(NotifyTransition, delivery.transition_id)
        if channel is None or transition is None or not channel.enabled:
            delivery.status, delivery.last_error = "skipped", "the channel is disabled"
            return None
        try:
            loaded = self.load_config(channel)
        except Exception as err:
            delivery.status, delivery.last_error = (
                "failed",
                f"the channel's settings cannot be used: {short(err)}",
            )
            return None
        if transition.id not in notes:
            notes[transition.id] = message.build(session, transition, self._link_settings)
        out = Outgoing(
            notes[transition.id],
            delivery.recipient,
            self.settings.notify_send_timeout_s,
            self.settings.notify_ca_file,
        )
        subscription, subscription_id = None, None
        if channel.kind == "webpush":
            subscription_id = int(delivery.recipient.removeprefix("push:"))
            row = session.get(PushSubscription, subscription_id)
            if row is None:
                delivery.status, delivery.last_error = "skipped", "the browser unsubscribed"
                return None
            subscription = webpush.Subscription(row.endpoint, row.p256dh, row.auth)
        return Job(
            delivery.id,
            delivery.attempts,
            channel.id,
            channel.kind,
            loaded,
            out,
            subscription,
            subscription_id,
        )

    def _vapid(self) -> webpush.VapidKey:
        with transaction(self.sessions) as session:
            raw = vapid.private_raw(session, self.settings.secret_key)
        subject = self.settings.vapid_subject or self.settings.public_url
        if not subject.startswith(("mailto:", "https://")):
            subject = f"mailto:edgefleet@{urlsplit(self.settings.public_url).hostname or 'localhost'}"
        return webpush.VapidKey(raw, subject)

    def _renew_and_send(self, job: Job, now: datetime) -> SendError | None:
        """Send after renewing the lease (so it runs from the send, not the claim); a claim that
        lapsed and went to another worker meanwhile is left to that worker."""
        with transaction(self.sessions) as session:
            renewed = session.execute(
                update(NotifyDelivery)
                .where(
                    NotifyDelivery.id == job.delivery_id,
                    NotifyDelivery.status == "sending",
                    NotifyDelivery.attempts == job.attempts,
                )
                .values(lease_until=now + timedelta(seconds=self.settings.notify_lease_s))
            )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            return LOST_CLAIM
        return self._send(job)

    def _send(self, job: Job) -> SendError | None:
        try:
            config: Any = job.config
            if job.kind == "email":
                email.send(config, job.out)
            elif job.kind == "webhook":
                webhook.send(config, job.out)
            elif job.kind == "apprise":
                apprise_urls.send(config, job.out)
            elif job.kind == "mqtt":
                mqtt_north.send(self.links, job.channel_id, config, job.out)
            elif job.kind == "webpush" and job.subscription is not None:
                try:  # again at send time: the name may resolve elsewhere since it was registered
                    webpush.check_endpoint(
                        job.subscription.endpoint, self.settings.notify_push_allow_loopback
                    )
                except webpush.EndpointError as err:
                    return SendError(str(err), permanent=err.permanent)
                webpush.send(job.subscription, self._vapid(), job.out)
            else:
                return SendError(f"cannot send to a {job.kind} channel", permanent=True)
        except SendError as err:
            return err
        except Exception as err:  # a sender's bug must not stop the worker; the delivery says what
            log.exception("sending delivery %d failed unexpectedly", job.delivery_id)
            return SendError(short(err))
        return None

    def _record(
        self, jobs: list[Job], outcomes: list[SendError | None], result: PassResult, now: datetime
    ) -> None:
        for job, error in zip(jobs, outcomes, strict=True):
            if error is LOST_CLAIM:  # nothing was sent; the row is the other worker's now
                continue
            with transaction(self.sessions) as session:
                self._record_one(session, job, error, now, result)

    def _record_one(
        self, session: Session, job: Job, error: SendError | None, now: datetime, result: PassResult
    ) -> None:
        mine = and_(
            NotifyDelivery.id == job.delivery_id,
            NotifyDelivery.status == "sending",
            NotifyDelivery.attempts == job.attempts,
        )
        channel = session.get(NotifyChannel, job.channel_id)
        if error is None:
            session.execute(
                update(NotifyDelivery)
                .where(mine)
                .values(status="sent", sent_at=now, lease_until=None, last_error=None)
            )
            if channel is not None:
                channel.last_success_at = now
            result.sent += 1
            return
        final = error.permanent or job.attempts >= self.settings.notify_max_attempts
        delay = min(
            self.settings.notify_retry_max_s, self.settings.notify_retry_base_s * 2 ** (job.attempts - 1)
        )
        values: dict[str, Any] = {"status": "failed" if final else "pending", "lease_until": None}
        values.update(last_error=str(error)[:1000], next_attempt_at=now + timedelta(seconds=delay))
        session.execute(update(NotifyDelivery).where(mine).values(**values))
        if channel is not None:
            channel.last_error, channel.last_error_at = str(error)[:1000], now
        if error.permanent and job.subscription_id is not None:
            session.execute(delete(PushSubscription).where(PushSubscription.id == job.subscription_id))
        result.failed += final
        result.retrying += not final
        result.errors.append(str(error))
        log.info("delivery %d (attempt %d) failed: %s", job.delivery_id, job.attempts, error)

    def _cleanup(self, now: datetime) -> None:
        """Every 10 minutes: forget spent acknowledge links once they would have expired anyway, and
        notifications (with their deliveries) older than KEEP_DAYS of cleared alarms and tests."""
        if self._last_cleanup is not None and now - self._last_cleanup < timedelta(minutes=10):
            return
        self._last_cleanup = now
        cutoff = now - timedelta(days=KEEP_DAYS)
        cleared = select(Alarm.id).where(Alarm.cleared_at.is_not(None))
        with transaction(self.sessions) as session:
            session.execute(delete(AckLinkUse).where(AckLinkUse.expires_at < now))
            session.execute(
                delete(NotifyTransition).where(
                    NotifyTransition.created_at < cutoff,
                    or_(NotifyTransition.alarm_id.is_(None), NotifyTransition.alarm_id.in_(cleared)),
                )
            )

    def publish_states(self) -> int:
        return self.states.run_once(self.sessions)

    def tick(self) -> PassResult:
        """A pass, and the device states to northbound MQTT when `notify_state_interval_s` has passed."""
        result = self.run_once()
        now = time.monotonic()
        if self._last_states is None or now - self._last_states >= self.settings.notify_state_interval_s:
            self._last_states = now
            self.publish_states()
        return result

    def close(self) -> None:
        self.links.close()
