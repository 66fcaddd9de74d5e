"""The notification cooldown is per device and alarm kind, applied when routing: a second alarm of
another kind on the same device within the cooldown is still announced, escalated and cleared; a
flapping alarm of one kind is announced once per cooldown. And a channel whose settings cannot be
read does not stop the routing of the others."""

import json
from datetime import timedelta

from sqlalchemy import select

from edgefleet.contracts import utc_now
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Alarm, NotifyChannel
from edgefleet.server.ingest import IngestStore
from edgefleet.server.services import alarms as alarm_service
from tests.server import seed
from tests.server.notify.conftest import World
from tests.server.notify.receiver import Receiver, http_receiver

COOLDOWN_S = 600


def _raise(world: World, kind: str) -> int:
    store = IngestStore(world.sessions, alarm_cooldown_s=COOLDOWN_S)
    seed.ingest(
        store,
        seed.anomaly(world.device_id).model_copy(
            update={"kind": kind, "severity": "critical", "reason": "clipping"}
        ),
    )
    with world.sessions() as session:
        alarm_id = session.scalar(
            select(Alarm.id).where(
                Alarm.device_id == world.device_id, Alarm.kind == kind, Alarm.cleared_at.is_(None)
            )
        )
    assert alarm_id is not None
    return int(alarm_id)


def _seen(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(path, change, alarm kind) of each request, in order."""
    notes = [(r.path, json.loads(r.body)) for r in receiver.requests]
    return [(path, note["change"], note["alarm"]["kind"]) for path, note in notes]


def test_cooldown_is_per_device_and_kind_and_keeps_escalation(sqlite_world: World) -> None:
    world = sqlite_world
    with http_receiver() as receiver:
        shift = world.channel("webhook", {"url": f"{receiver.url}/shift"}, name="shift")
        manager = world.channel("webhook", {"url": f"{receiver.url}/manager"}, name="manager")
        world.rule(channel_ids=[shift], escalate_after_s=300, escalate_channel_ids=[manager])
        worker = world.worker(alarm_notify_cooldown_s=COOLDOWN_S)
        first = _raise(world, "anomaly")
        second = _raise(world, "sensor_fault")  # the device's cooldown runs: still announced
        start = utc_now()
        assert worker.run_once(start).sent == 2
        assert worker.run_once(start + timedelta(seconds=301)).escalated == 2
        world.clear_alarm(second)
        worker.run_once(start + timedelta(seconds=302))
        with transaction(world.sessions) as session:  # the anomaly clears by itself and opens again
            session.get_one(Alarm, first).cleared_at = utc_now()
            alarm_service.auto_clear(session, 0)
        reopened = _raise(world, "anomaly")  # flapping within the cooldown: not announced again
        assert reopened != first
        world.acknowledge(reopened)  # (so the test clock, hours ahead, does not escalate it)
        worker.run_once(start + timedelta(seconds=303))
        seen = _seen(receiver)
    assert sorted(seen[:2]) == [("/shift", "opened", "anomaly"), ("/shift", "opened", "sensor_fault")]
    assert sorted(seen[2:4]) == [
        ("/manager", "escalated", "anomaly"),
        ("/manager", "escalated", "sensor_fault"),
    ]
    assert sorted(seen[4:]) == [
        ("/manager", "cleared", "sensor_fault"),
        ("/shift", "cleared", "sensor_fault"),
    ]


def test_unreadable_channel_does_not_stop_routing(sqlite_world: World) -> None:
    world = sqlite_world
    with http_receiver() as receiver:
        hook = world.channel("webhook", {"url": f"{receiver.url}/hook"}, name="hook")
        broken = world.channel("apprise", {"urls": [f"{receiver.url.replace('http', 'json')}/x"]})
        world.rule(channel_ids=[hook, broken])
        with transaction(world.sessions) as session:  # e.g. EDGEFLEET_SECRET_KEY changed since
            session.get_one(NotifyChannel, broken).secrets_sealed = b"\0" * 40
        world.open_alarm()
        result = world.worker().run_once()
        paths = [r.path for r in receiver.requests]
    assert (result.routed, result.sent, paths) == (2, 1, ["/hook"])
    by_channel = {d.channel_id: d for d in world.deliveries()}
    assert by_channel[hook].status == "sent"
    assert by_channel[broken].status == "failed"
    assert "cannot be used" in (by_channel[broken].last_error or "")
