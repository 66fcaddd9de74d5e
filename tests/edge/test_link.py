import itertools
import json
import random
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from edgefleet.contracts import Ack, encode, utc_now
from edgefleet.edge.config import MqttConfig
from edgefleet.edge.link import AckTracker, Backoff, MqttLink
from edgefleet.edge.outbox import Outbox


def test_backoff_grows_exponentially_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    caps = [min(8.0, 0.5 * 2**i) for i in range(12)]
    assert all(0.5 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays[4:])) == len(delays[4:])  # jittered: devices do not reconnect in lockstep
    assert max(delays) > 4.0
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_link_parses_broker_urls(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    link = MqttLink("d1", MqttConfig(url="mqtts://broker.example:8884"), box, lambda state: b"{}")
    assert (link.host, link.port, link.tls) == ("broker.example", 8884, True)
    link = MqttLink("d1", MqttConfig(url="mqtt://10.0.0.2"), box, lambda state: b"{}")
    assert (link.host, link.port, link.tls) == ("10.0.0.2", 1883, False)
    box.close()


# -- end-to-end acknowledgement, driven without a broker -----------------------------------------


class FakeClient:
    """Stands in for paho's client: records publications and hands out message ids."""

    def __init__(self) -> None:
        self.published: list[tuple[int, str, bytes]] = []
        self.mid = 0

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> SimpleNamespace:
        self.mid += 1
        self.published.append((self.mid, topic, payload))
        return SimpleNamespace(rc=mqtt.MQTT_ERR_SUCCESS, mid=self.mid)

    def seqs(self, channel: str = "/event") -> list[int]:
        return [int(json.loads(p)["seq"]) for _, t, p in self.published if t.endswith(channel)]


class Rig:
    """A link on a real outbox with a fake client and a clock the test moves."""

    def __init__(self, tmp_path: Path, **mqtt_config: object) -> None:
        self.now = 1000.0
        self.box = Outbox(tmp_path / "o.sqlite")
        config = MqttConfig.model_validate({"ack_timeout_s": 1.0, "ack_timeout_max_s": 8.0, **mqtt_config})
        self.link = MqttLink(
            "d1", config, self.box, lambda state: b"{}", rng=random.Random(7), clock=lambda: self.now
        )
        self.client = FakeClient()
        self.link._client = self.client  # type: ignore[assignment]
        self.link.connected.set()

    def put(self, n: int) -> None:
        for _ in range(n):
            self.box.put("ef/v1/d1/event", "event", lambda seq: json.dumps({"seq": seq}).encode())

    def pump(self) -> None:
        """One pass of the link's loop (the resend check and the submission)."""
        if self.link.end_to_end:
            self.link._check_resend()
        self.link._wake.set()
        self.link._submit()

    def puback_all(self) -> None:
        for mid in list(self.link._inflight):
            self.link._on_publish(None, None, mid)  # type: ignore[arg-type]

    def deliver(self, topic: str, payload: bytes) -> None:
        message = mqtt.MQTTMessage(topic=topic.encode())
        message.payload = payload
        self.link._on_message(None, None, message)  # type: ignore[arg-type]

    def ack(self, *ranges: tuple[int, int], device_id: str = "d1", topic: str = "ef/v1/d1/ack") -> None:
        self.deliver(topic, encode(Ack(device_id=device_id, ts=utc_now(), ranges=list(ranges))))


def test_a_puback_frees_the_window_and_only_the_servers_ack_deletes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_inflight=4)
    rig.put(10)
    rig.pump()
    assert rig.client.seqs() == [0, 1, 2, 3]  # the in-flight window
    rig.pump()
    assert len(rig.client.published) == 4  # no room until PUBACKs
    rig.puback_all()
    assert rig.box.depth() == 10  # the broker has them; the server has not said so
    rig.pump()
    assert rig.client.seqs() == list(range(8))
    rig.ack((0, 5))
    assert rig.box.depth() == 4 and [m.seq for m in rig.box.pending()] == [6, 7, 8, 9]
    stats = rig.link.stats
    assert (stats.published, stats.broker_acked, stats.acked, stats.acks) == (8, 4, 6, 1)
    assert rig.link.unacknowledged == 2


def test_an_ack_of_500_seqs_is_one_transaction(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_inflight=1000)
    rig.put(500)
    rig.pump()
    statements: list[str] = []
    rig.box._db.set_trace_callback(statements.append)
    rig.ack((0, 499))
    rig.box._db.set_trace_callback(None)
    assert rig.box.depth() == 0 and rig.link.stats.acked == 500
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert [s for s in statements if s.startswith("DELETE")] == [
        "DELETE FROM messages WHERE seq BETWEEN 0 AND 499"
    ]


def test_bad_foreign_and_unknown_acks_are_counted_and_ignored(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put(5)
    rig.pump()  # seqs 0-4 published
    rig.deliver("ef/v1/d1/ack", b"{not json")
    rig.deliver(
        "ef/v1/d1/ack", b'{"schema": 1, "ts": "2026-01-01T00:00:00Z", "device_id": "d1", "ranges": [[3, 1]]}'
    )
    rig.ack((0, 4), device_id="d2")  # payload names another device than the topic
    rig.ack((0, 4), device_id="d2", topic="ef/v1/d2/ack")  # another device's topic
    assert rig.link.stats.acks_rejected == 4 and rig.box.depth() == 5
    rig.ack((3, 10**15))  # 5 .. 10**15 were never published: ignored, counted
    assert [m.seq for m in rig.box.pending()] == [0, 1, 2]
    assert rig.link.stats.acks_unknown == 10**15 - 4
    rig.put(1)  # seq 5, stored but not yet published: an ack cannot delete it
    rig.ack((5, 5))
    assert [m.seq for m in rig.box.pending()] == [0, 1, 2, 5]
    rig.ack((0, 4))  # 3 and 4 again: duplicates
    assert rig.link.stats.acks_duplicate == 2 and rig.link.stats.acked == 5
    assert rig.link.stats.commands_rejected == 0


def test_unacknowledged_messages_are_resent_with_backoff_until_acknowledged(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_inflight=100)
    rig.put(3)
    rig.pump()
    rig.puback_all()
    rig.now += 0.9
    rig.pump()
    assert rig.client.seqs() == [0, 1, 2]  # not yet
    rig.put(1)  # seq 3, published 0.9 s after the others
    rig.pump()
    rig.now += 0.1
    rig.pump()
    assert rig.client.seqs() == [0, 1, 2, 3, 0, 1, 2]  # the first three timed out (1 s)
    timeouts = [rig.link.tracker.timeout]
    rig.ack((1, 1))  # progress: the server is there; back to 1 s
    assert rig.link.tracker.timeout == 1.0
    rig.now += 1.0
    rig.pump()
    assert rig.client.seqs()[7:] == [0, 2, 3]  # 1 was acknowledged; resent in seq order
    # no acknowledgement any more (the server is down): each round waits longer, capped
    for _ in range(8):
        timeouts.append(rig.link.tracker.timeout)
        rig.now += rig.link.tracker.timeout + 1e-6
        rig.pump()
        rig.puback_all()
    assert all(1.0 <= t <= 8.0 for t in timeouts) and max(timeouts) > 4.0
    assert rig.link.stats.resend_rounds == 10
    assert rig.link.stats.resent == len(rig.client.published) - 4
    assert rig.box.depth() == 3
    rig.ack((0, 3))
    assert rig.box.depth() == 0 and rig.link.unacknowledged == 0
    rig.now += 100
    rig.pump()
    assert rig.link.stats.resend_rounds == 10  # nothing left to resend


def test_resend_rounds_follow_the_backoff_timeouts() -> None:
    tracker = AckTracker(2.0, 30.0, rng=random.Random(3))
    now, rounds = 0.0, []
    for seq in range(8):
        tracker.published(seq, now)
        timeout = tracker.timeout
        assert tracker.due(now + timeout - 0.01) == []
        now += timeout + 1e-6
        assert tracker.due(now) == [seq]
        rounds.append(timeout)
    # round k waits between c/2 and c, c = min(30, 2 * 2**k), never less than 2 s
    assert rounds[0] == 2.0
    for k, timeout in enumerate(rounds[1:], start=1):
        cap = min(30.0, 2.0 * 2**k)
        assert max(2.0, cap / 2) <= timeout <= cap, (k, rounds)
    assert rounds[-1] >= 15.0
    tracker.published(8, now)
    assert tracker.acknowledged([(8, 8)]) == 1 and tracker.timeout == 2.0 and len(tracker) == 0


def test_a_round_comes_at_most_once_per_timeout_under_a_steady_stream() -> None:
    tracker = AckTracker(1.0, 4.0, rng=random.Random(5))
    rounds: list[float] = []
    for step in range(2000):  # a message every 10 ms for 20 s, never acknowledged
        now = step * 0.01
        tracker.published(10_000 + step, now)
        due = tracker.due(now)
        if due:
            rounds.append(now)
            for seq in due:
                tracker.published(seq, now)
    gaps = [b - a for a, b in itertools.pairwise(rounds)]
    assert rounds[0] == pytest.approx(1.0) and all(g >= 1.0 - 1e-9 for g in gaps)
    assert 6 <= len(rounds) <= 10, rounds  # 1 s, then 1-2 s, then 2-4 s apart
    tracker.progress()
    assert tracker.timeout == 1.0


def test_a_reconnect_republishes_everything_unacknowledged(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put(6)
    rig.pump()
    rig.puback_all()
    rig.ack((0, 1))
    rig.link._forget_connection()  # the connection dropped
    rig.client = FakeClient()
    rig.link._client = rig.client  # type: ignore[assignment]
    rig.pump()
    assert rig.client.seqs() == [2, 3, 4, 5]
    assert (rig.link.stats.published, rig.link.stats.resent) == (6, 4)


def test_an_ack_the_disk_cannot_delete_is_not_resent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.put(4)
    rig.pump()
    rig.box._db.execute("PRAGMA query_only = ON")  # the disk stops taking writes
    rig.ack((0, 2))
    assert rig.box.errors == 1
    rig.now += 5
    rig.pump()
    assert rig.client.seqs() == [0, 1, 2, 3, 3]  # only 3 is resent
    rig.box._db.execute("PRAGMA query_only = OFF")
    rig.put(1)  # the next write that succeeds deletes them
    assert [m.seq for m in rig.box.pending()] == [3, 4]


def test_broker_delivery_deletes_on_puback(tmp_path: Path) -> None:
    rig = Rig(tmp_path, delivery="broker")
    rig.put(3)
    rig.pump()
    assert rig.box.depth() == 3
    rig.puback_all()
    assert rig.box.depth() == 0 and rig.link.stats.acked == 3
    rig.now += 100
    rig.pump()
    assert len(rig.client.published) == 3


def test_timeouts_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="ack_timeout_max_s"):
        MqttConfig(ack_timeout_s=30, ack_timeout_max_s=10)
