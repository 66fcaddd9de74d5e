import random
from pathlib import Path

from edgefleet.edge.config import MqttConfig
from edgefleet.edge.link import Backoff, MqttLink
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
