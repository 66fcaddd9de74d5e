"""Email through a real SMTP server: exactly one mail per alarm transition, with the right content."""

import re
from datetime import timedelta

from sqlalchemy import select

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import NotifyChannel, NotifyTransition
from edgefleet.server.ingest import IngestStore
from edgefleet.server.notify.local_inbox import LocalInbox
from tests.server import seed
from tests.server.notify.conftest import World, smtp_config


def test_one_mail_per_alarm_transition(world: World, inbox: LocalInbox) -> None:
    channel = world.channel("email", smtp_config(inbox), name="ops mail")
    world.rule(channel_ids=[channel])
    worker = world.worker()

    alarm_id = world.open_alarm("critical")
    for _ in range(3):  # more events of the open alarm: no new transition, no new mail
        seed.ingest(IngestStore(world.sessions, alarm_cooldown_s=0), seed.anomaly(world.device_id))
    first = worker.run_once()
    assert (first.routed, first.sent) == (1, 1)
    [opened] = inbox.wait_for(1, 5)
    assert opened["Subject"] == f"[edgefleet] OPEN critical anomaly alarm on {world.device_id}"
    assert opened["To"] == "ops@plant.example" and opened["From"] == "edgefleet@plant.example"
    body = opened.get_body().get_content()  # type: ignore[union-attr]
    notification_id = opened["X-Edgefleet-Notification-Id"]
    assert re.fullmatch(r"efn_[0-9a-f]{32}", notification_id)
    assert opened["Message-ID"] == f"<{notification_id}@edgefleet.invalid>"
    assert f"Alarm id: {alarm_id}" in body and "events so far: 4" in body
    assert "http://127.0.0.1:8000/notify/ack?token=" in body
    assert worker.run_once().sent == 0  # nothing new

    world.clear_alarm(alarm_id)
    assert worker.run_once().sent == 1
    mails = inbox.wait_for(2, 5)
    cleared = mails[1]
    assert cleared["Subject"] == f"[edgefleet] CLEARED critical anomaly alarm on {world.device_id}"
    assert "cleared (user)" in cleared.get_body().get_content()  # type: ignore[union-attr]
    assert "/notify/ack" not in cleared.get_body().get_content()  # type: ignore[union-attr]
    assert cleared["X-Edgefleet-Notification-Id"] != notification_id
    for _ in range(2):
        worker.run_once(utc_now() + timedelta(hours=1))
    assert len(inbox.messages) == 2
    with world.sessions() as session:
        mail_channel = session.scalar(select(NotifyChannel).where(NotifyChannel.id == channel))
        assert mail_channel is not None and mail_channel.last_success_at is not None
    assert [d.status for d in world.deliveries()] == ["sent", "sent"]


def test_unreachable_mail_server_is_retried_with_backoff(sqlite_world: World) -> None:
    world = sqlite_world
    dead = LocalInbox(0)  # never started: its port is just a closed port
    config = {**smtp_config(dead), "port": 9}  # discard port: connection refused on loopback
    channel = world.channel("email", config)
    world.rule(channel_ids=[channel])
    world.open_alarm()
    worker = world.worker(notify_retry_base_s=10.0, notify_max_attempts=3)
    now = utc_now()
    assert worker.run_once(now).retrying == 1
    [delivery] = world.deliveries()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at == now + timedelta(seconds=10)  # backoff 10, 20 s ...
    assert "Connection refused" in (delivery.last_error or "")
    assert worker.run_once(now + timedelta(seconds=9)).retrying == 0  # not due yet
    assert worker.run_once(now + timedelta(seconds=10)).retrying == 1
    assert world.deliveries()[0].next_attempt_at == now + timedelta(seconds=30)
    assert worker.run_once(now + timedelta(seconds=30)).failed == 1  # the third attempt was the last
    assert world.deliveries()[0].status == "failed"
    with world.sessions() as session:
        stored = session.get(NotifyChannel, channel)
        assert stored is not None and "Connection refused" in (stored.last_error or "")


def test_old_notifications_of_cleared_alarms_are_forgotten(sqlite_world: World, inbox: LocalInbox) -> None:
    world = sqlite_world
    world.rule(channel_ids=[world.channel("email", smtp_config(inbox))])
    old_alarm = world.open_alarm()
    world.clear_alarm(old_alarm)
    still_open = world.open_alarm(device_id=world.add_device())
    worker = world.worker()
    worker.run_once()
    assert len(world.deliveries()) == 3
    worker.run_once(utc_now() + timedelta(days=91))  # the log keeps 90 days; an open alarm's stay
    with world.sessions() as session:
        left = session.scalars(select(NotifyTransition.alarm_id)).all()
    assert left == [still_open] and len(world.deliveries()) == 1
