"""A device against a real Mosquitto: contract messages, outages, restarts, commands."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.contracts import Channel, Command, encode, topic_for, utc_now
from edgefleet.edge.clock import ClockConfig
from edgefleet.edge.config import DeviceConfig, MqttConfig, OutboxConfig
from edgefleet.edge.device import Device
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.outbox import Outbox
from edgefleet.edge.sources.synthetic import SyntheticSource
from tests.edge.mqtt_helpers import Collector, Running, toggling_faults
from tests.support.services import MosquittoBroker

pytestmark = pytest.mark.needs("mosquitto")


def device_config(broker: MosquittoBroker, tmp_path: Path, device_id: str = "dev-1") -> DeviceConfig:
    return DeviceConfig(
        device_id=device_id,
        mqtt=MqttConfig(url=broker.url, backoff_min_s=0.05, backoff_max_s=0.5, keepalive_s=5),
        outbox=OutboxConfig(directory=tmp_path / "outbox"),
        clock=ClockConfig(enabled=False),
        telemetry_interval_s=5.0,
    )


@pytest.fixture
def collector(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    """The test's stand-in for the server: a persistent QoS 1 session that survives broker restarts,
    acknowledging what it receives as the server's ingest does."""
    c = Collector(mosquitto.url, ack=True)
    assert c.wait_for(c.client.is_connected, 5)
    yield c
    c.close()


def assert_exactly_once_in_order(collector: Collector, device_id: str, created: list[int]) -> None:
    stored = collector.event_seqs_by_device()[device_id]
    assert stored == sorted(stored), "events reordered within the device"
    assert stored == created, f"lost or extra events: missing {sorted(set(created) - set(stored))}"


def test_messages_validate_against_the_contract_and_status_is_retained(
    mosquitto: MosquittoBroker, collector: Collector, model_dir: Path, tmp_path: Path
) -> None:
    cfg = device_config(mosquitto, tmp_path)
    run = Running(
        Device(cfg, load_model_dir(model_dir), SyntheticSource(seed=3, faults=toggling_faults())), 20.0
    )
    try:
        assert collector.wait_for(lambda: len(collector.events()) >= 4 and len(collector.telemetry()) >= 2)
    finally:
        run.close()
    assert collector.invalid == []
    assert collector.wait_for(lambda: any(s.state == "offline" for s in collector.statuses()), 5)
    statuses = collector.statuses()
    assert (
        statuses[0].state == "online" and statuses[0].model_id == "test-ae" and statuses[0].firmware_version
    )
    tele = collector.telemetry()[0]
    assert tele.windows > 0 and tele.arena_bytes and tele.inference_us and tele.mode == "running"
    assert tele.clock_synced is False  # no time server in this test
    kinds = {e.kind for e in collector.events()}
    assert "anomaly" in kinds
    # every message of the device carries a distinct seq
    seqs = [m.seq for _, m in collector.messages if hasattr(m, "seq")]
    assert len(seqs) == len(set(seqs))


def _assert_outage_loses_nothing(
    *,
    mosquitto: MosquittoBroker,
    collector: Collector,
    model_dir: Path,
    tmp_path: Path,
    outage_s: float,
    speed: float,
) -> None:
    cfg = device_config(mosquitto, tmp_path)
    device = Device(cfg, load_model_dir(model_dir), SyntheticSource(seed=3, faults=toggling_faults()))
    run = Running(device, speed)
    try:
        assert collector.wait_for(lambda: len(collector.events()) >= 2)
        mosquitto.stop()
        created_before = len(device.events_created)
        time.sleep(outage_s)
        assert len(device.events_created) > created_before + 2, "the device kept deciding during the outage"
        assert device.outbox.depth() > 0
        mosquitto.start()
        time.sleep(1.0)
        run.stop.set()
        run.thread.join(10)
        created = list(device.events_created)
        assert collector.wait_for(
            lambda: collector.event_seqs_by_device().get("dev-1", [])[-1:] == created[-1:], 20
        ), (
            f"created {created}, stored {collector.event_seqs_by_device().get('dev-1')}, "
            f"outbox {[m.seq for m in device.outbox.pending()]}, link {device.link and device.link.stats}, "
            f"collector connected {collector.client.is_connected()}"
        )
        assert device.link is not None and device.link.stats.connects >= 2
        assert collector.wait_for(lambda: device.outbox.depth() == 0, 10)
    finally:
        run.close()
    assert_exactly_once_in_order(collector, "dev-1", created)
    assert collector.invalid == []


@pytest.mark.parametrize(
    ("outage_s", "speed"),
    [pytest.param(3.0, 20.0, id="3s"), pytest.param(30.0, 4.0, id="30s", marks=pytest.mark.slow)],
)
def test_broker_outage_every_event_arrives_exactly_once_in_order(
    mosquitto: MosquittoBroker,
    collector: Collector,
    model_dir: Path,
    tmp_path: Path,
    outage_s: float,
    speed: float,
) -> None:
    _assert_outage_loses_nothing(
        mosquitto=mosquitto,
        collector=collector,
        model_dir=model_dir,
        tmp_path=tmp_path,
        outage_s=outage_s,
        speed=speed,
    )


def test_recommission_command_restarts_commissioning(
    mosquitto: MosquittoBroker, collector: Collector, model_dir: Path, tmp_path: Path
) -> None:
    cfg = device_config(mosquitto, tmp_path)
    device = Device(cfg, load_model_dir(model_dir), SyntheticSource(seed=3))
    run = Running(device, 10.0)
    try:
        assert collector.wait_for(lambda: device.link is not None and device.link.connected.is_set(), 10)
        time.sleep(0.3)  # let the device subscribe to its command topic
        command = Command(
            device_id="dev-1", command_id="c1", command="recommission", args={"windows": 40}, ts=utc_now()
        )
        collector.client.publish(topic_for("dev-1", Channel.CMD), encode(command), qos=1)
        bad = b'{"not": "a command"}'
        collector.client.publish(topic_for("dev-1", Channel.CMD), bad, qos=1)
        assert collector.wait_for(lambda: device.mode == "commissioning", 10)
        assert collector.wait_for(
            lambda: any(s.mode == "commissioning" for s in collector.statuses() if s.state == "online"), 10
        )
        assert device.link is not None
        assert collector.wait_for(
            lambda: device.link is not None and device.link.stats.commands_rejected == 1, 5
        )
        # 40 windows later it runs again, with its own threshold, and its retained status says so
        assert collector.wait_for(lambda: device.mode == "running", 20)
        assert device.core.baseline.commissioned
        assert collector.wait_for(lambda: [s.mode for s in collector.statuses()][-1] == "running", 10)
    finally:
        run.close()


def _device_process(model_dir: Path, broker: str, outbox: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edgefleet.cli.main import main; main()",
            "device",
            "run",
            "--id",
            "proc-1",
            "--model",
            str(model_dir),
            "--broker",
            broker,
            "--source",
            "synthetic:3",
            "--faults",
            toggling_faults(),
            "--outbox-dir",
            str(outbox),
            "--no-ntp",
            "--speed",
            "20",
            "--telemetry-interval",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "EDGEFLEET_LOG_LEVEL": "WARNING"},
    )


def test_killed_device_process_resends_its_outbox_and_seq_continues(
    mosquitto: MosquittoBroker, collector: Collector, model_dir: Path, tmp_path: Path
) -> None:
    outbox_dir = tmp_path / "outbox"
    proc = _device_process(model_dir, mosquitto.url, outbox_dir)
    try:
        assert collector.wait_for(lambda: len(collector.event_seqs_by_device().get("proc-1", [])) >= 2, 60)
        mosquitto.stop()  # nothing can be acknowledged now
        box = Outbox(outbox_dir / "proc-1.sqlite")
        assert collector.wait_for(lambda: len([m for m in box.pending() if "/event" in m.topic]) >= 3, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        unacked = [m.seq for m in box.pending() if m.topic.endswith("/event")]
        next_seq_before = box.peek_seq()
        box.close()
        mosquitto.start()
        proc = _device_process(model_dir, mosquitto.url, outbox_dir)
        assert collector.wait_for(
            lambda: set(unacked) <= set(collector.event_seqs_by_device().get("proc-1", [])), 60
        ), "the restarted device did not resend its outbox"
        assert collector.wait_for(
            lambda: max(collector.event_seqs_by_device()["proc-1"]) > next_seq_before, 60
        ), "no new events after the restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    stored = collector.event_seqs_by_device()["proc-1"]
    assert stored == sorted(stored) and len(stored) == len(set(stored))
    new = [s for s in stored if s >= next_seq_before]
    assert new and min(new) >= next_seq_before  # seq continued, never reused
    assert collector.invalid == []


def test_last_will_marks_a_crashed_device_offline(
    mosquitto: MosquittoBroker, collector: Collector, model_dir: Path, tmp_path: Path
) -> None:
    proc = _device_process(model_dir, mosquitto.url, tmp_path / "outbox")
    try:
        assert collector.wait_for(
            lambda: any(s.device_id == "proc-1" and s.state == "online" for s in collector.statuses()), 60
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert collector.wait_for(lambda: collector.statuses()[-1].state == "offline", 10)
    will = collector.statuses()[-1]
    assert will.device_id == "proc-1" and will.model_id == "test-ae" and will.firmware_version
