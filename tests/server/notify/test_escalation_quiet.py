"""Escalation and quiet hours, with the worker's clock set by the test."""

from datetime import timedelta

from edgefleet.contracts import utc_now
from edgefleet.server.notify.local_inbox import LocalInbox
from tests.server.notify.conftest import World, at, smtp_config


def test_unacknowledged_alarm_escalates_once_to_the_next_channel(world: World, inbox: LocalInbox) -> None:
    first = world.channel("email", smtp_config(inbox, "shift@plant.example"), name="shift")
    second = world.channel("email", smtp_config(inbox, "manager@plant.example"), name="manager")
    world.rule(channel_ids=[first], escalate_after_s=600, escalate_channel_ids=[second])
    worker = world.worker()
    alarm_id = world.open_alarm("critical")
    acked_alarm = world.open_alarm("critical", device_id=world.add_device())
    start = utc_now()
    assert worker.run_once(start).sent == 2
    world.acknowledge(acked_alarm)  # someone is on this one: it does not escalate

    assert worker.run_once(start + timedelta(seconds=590)).escalated == 0
    late = worker.run_once(start + timedelta(seconds=601))
    assert (late.escalated, late.sent) == (1, 1)
    mails = inbox.wait_for(3, 5)
    assert mails[2]["To"] == "manager@plant.example"
    assert mails[2]["Subject"].startswith("[edgefleet] ESCALATED critical anomaly alarm on")
    assert "still not acknowledged" in mails[2].get_body().get_content()  # type: ignore[union-attr]
    assert f"Alarm id: {alarm_id}" in mails[2].get_body().get_content()  # type: ignore[union-attr]
    for minutes in (20, 60, 600):  # one escalation per alarm and rule
        assert worker.run_once(start + timedelta(minutes=minutes)).escalated == 0
    world.clear_alarm(alarm_id)  # the clearing goes where the opening and the escalation went
    worker.run_once(start + timedelta(hours=11))
    cleared = inbox.wait_for(5, 5)[3:]
    assert sorted(m["To"] for m in cleared) == ["manager@plant.example", "shift@plant.example"]
    assert len(inbox.messages) == 5


def test_quiet_hours_hold_until_they_end_unless_critical(world: World, inbox: LocalInbox) -> None:
    channel = world.channel("email", smtp_config(inbox))
    world.rule(
        channel_ids=[channel], quiet_start="22:00", quiet_end="06:00", quiet_timezone="Europe/Berlin",
        quiet_bypass_severity="critical",
    )  # fmt: skip
    worker = world.worker()
    night = at("2026-12-07T23:30:00+01:00")  # Berlin
    warning = world.open_alarm("warning")
    assert worker.run_once(night).sent == 0
    [held] = world.deliveries()
    assert held.status == "held" and held.next_attempt_at == at("2026-12-08T06:00:00+01:00")
    assert held.last_error is not None and "quiet hours" in held.last_error

    world.open_alarm("critical", device_id=world.add_device())
    assert worker.run_once(night + timedelta(minutes=1)).sent == 1  # critical bypasses quiet hours
    assert "critical" in inbox.wait_for(1, 5)[0]["Subject"]

    brief = world.open_alarm("warning", device_id=world.add_device())
    worker.run_once(night + timedelta(minutes=2))
    world.clear_alarm(brief)  # opened and cleared while quiet: nobody needs to hear of it
    worker.run_once(night + timedelta(minutes=3))

    assert worker.run_once(at("2026-12-08T05:59:59+01:00")).sent == 0
    morning = worker.run_once(at("2026-12-08T06:00:00+01:00"))
    assert morning.sent == 1
    mails = inbox.wait_for(2, 5)
    assert f"Alarm id: {warning}" in mails[1].get_body().get_content()  # type: ignore[union-attr]
    assert worker.run_once(at("2026-12-08T09:00:00+01:00")).sent == 0
    statuses = sorted(d.status for d in world.deliveries())
    assert statuses == ["sent", "sent", "skipped"] and len(inbox.messages) == 2
