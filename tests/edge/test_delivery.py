"""End-to-end delivery against a real Mosquitto: a message leaves a device's outbox only when the
(fake) ingest acknowledges it on `ack`; broker crashes, an ingest that stops acknowledging and a
killed device process lose nothing.

The ingest here is `Collector(ack=True)`: it "stores" what it receives and acknowledges it, so these
tests do not depend on the server. Every seq the device stored in its outbox is compared with the
distinct seqs the ingest received."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.device import Device
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.sources.synthetic import SyntheticSource
from tests.edge.mqtt_helpers import Collector, Running, delivery_config, recording, toggling_faults
from tests.support.services import MosquittoBroker

pytestmark = pytest.mark.needs("mosquitto")
DEVICE = "dev-1"


def device_config(broker: MosquittoBroker, tmp_path: Path, **mqtt: object) -> DeviceConfig:
    return delivery_config(broker.url, tmp_path / "outbox", DEVICE, **mqtt)


@pytest.fixture
def ingest(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    """A fake ingest that comes back 4 s after a broker crash: later than the devices do."""
    c = Collector(mosquitto.url, client_id="fake-ingest", ack=True, reconnect_delay_s=(4, 4))
    assert c.wait_for(c.client.is_connected, 5)
    yield c
    c.close()


def _broker_crash(
    mosquitto: MosquittoBroker, ingest: Collector, model_dir: Path, tmp_path: Path, delivery: str
) -> tuple[Device, list[int]]:
    """Run a device, kill -9 the broker for 2 s, let everything settle; returns what was stored."""
    device = Device(
        device_config(mosquitto, tmp_path, delivery=delivery),
        load_model_dir(model_dir),
        SyntheticSource(seed=3, faults=toggling_faults()),
    )
    stored = recording(device)
    run = Running(device, 20.0)
    try:
        assert ingest.wait_for(lambda: len(ingest.seqs(DEVICE)) >= 10, 20)
        mosquitto.stop(signal.SIGKILL)  # no persistence written: the ingest's session is gone
        time.sleep(2.0)
        mosquitto.start()
        # the device reconnects within 0.5 s and publishes into a broker nobody subscribes to until
        # the ingest is back (4 s after the crash)
        assert ingest.wait_for(ingest.client.is_connected, 10)
        time.sleep(1.0)
        run.stop.set()
        run.thread.join(10)
        ingest.wait_for(lambda: device.outbox.depth() == 0, 20)
    finally:
        run.close()
    return device, stored


def test_broker_kill_9_loses_nothing_with_end_to_end_acks(
    mosquitto: MosquittoBroker, ingest: Collector, model_dir: Path, tmp_path: Path
) -> None:
    device, stored = _broker_crash(mosquitto, ingest, model_dir, tmp_path, "end_to_end")
    missing = sorted(set(stored) - ingest.seqs(DEVICE))
    assert not missing, f"lost {len(missing)} of {len(stored)}: {missing[:20]}"
    assert ingest.seqs(DEVICE) == set(stored)
    assert device.outbox.dropped() == {}
    link = device.link
    assert link is not None and link.stats.connects >= 2
    assert link.stats.acked == len(stored), link.stats
    # what the broker took while nobody subscribed was published again (the server dedups)
    assert link.stats.resent > 0 and link.stats.resend_rounds > 0, link.stats
    assert ingest.invalid == []


def test_broker_kill_9_loses_messages_when_a_puback_frees_them(
    mosquitto: MosquittoBroker, ingest: Collector, model_dir: Path, tmp_path: Path
) -> None:
    """The same crash with `delivery: broker` (the old behaviour): the fault above is real."""
    device, stored = _broker_crash(mosquitto, ingest, model_dir, tmp_path, "broker")
    assert device.outbox.depth() == 0  # every message was PUBACKed ...
    missing = set(stored) - ingest.seqs(DEVICE)
    assert missing, "no loss: the crash did not open the window the end-to-end ack closes"


def test_unacknowledged_messages_stay_and_are_resent_with_backoff(
    mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> None:
    ingest = Collector(mosquitto.url, client_id="fake-ingest", ack=True)
    device = Device(
        device_config(mosquitto, tmp_path),
        load_model_dir(model_dir),
        SyntheticSource(seed=3, faults=toggling_faults()),
    )
    stored = recording(device)
    run = Running(device, 20.0)
    try:
        assert ingest.wait_for(lambda: len(ingest.seqs(DEVICE)) >= 5, 20)
        assert ingest.wait_for(lambda: device.outbox.depth() <= 2, 5)
        link = device.link
        assert link is not None
        ingest.acking.clear()  # the ingest stores but does not acknowledge (a database stall, say)
        time.sleep(6.0)
        held = device.outbox.pending(limit=10_000)
        received = ingest.seqs(DEVICE)
        # delivered (PUBACKed, received) yet kept: only the server's ack frees a message
        assert len(held) > 20 and {m.seq for m in held} <= received | set(stored)
        assert len([m for m in held if m.seq in received]) > 20
        assert ingest.duplicates(DEVICE) > 0 and link.stats.resent > 0
        # 6 s with a 1 s timeout: a resend each second would be 6 rounds; the backoff makes fewer
        assert 2 <= link.stats.resend_rounds <= 4, link.stats
        assert link.tracker.timeout > 1.0
        ingest.acking.set()
        assert ingest.wait_for(lambda: device.outbox.depth() <= 2, 10)
        assert link.tracker.timeout == 1.0  # acknowledged again: back to the first timeout
        run.stop.set()
        run.thread.join(10)
        assert ingest.wait_for(lambda: device.outbox.depth() == 0, 10)
    finally:
        run.close()
        ingest.close()
    assert ingest.seqs(DEVICE) == set(stored)  # the duplicates are the same (device_id, seq)
    assert ingest.invalid == []


def _read_outbox(path: Path) -> list[int]:
    """Seqs in a device's outbox, read beside the device process (read-only)."""
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [int(r[0]) for r in db.execute("SELECT seq FROM messages ORDER BY seq")]


def _device_process(model_dir: Path, broker: MosquittoBroker, tmp_path: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "device.yaml"
    config.write_text(
        "device_id: proc-1\n"
        "mqtt: {backoff_min_s: 0.05, backoff_max_s: 0.5, ack_timeout_s: 1.0, ack_timeout_max_s: 4.0}\n",
        encoding="utf-8",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "device",
            "run",
            "--id",
            "proc-1",
            "--config",
            str(config),
            "--model",
            str(model_dir),
            "--broker",
            broker.url,
            "--source",
            "synthetic:3",
            "--faults",
            toggling_faults(),
            "--outbox-dir",
            str(tmp_path / "outbox"),
            "--no-ntp",
            "--speed",
            "20",
            "--telemetry-interval",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "EDGEFLEET_LOG_LEVEL": "WARNING"},
    )


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_killed_device_process_resends_what_was_not_acknowledged(
    mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> None:
    ingest = Collector(mosquitto.url, client_id="fake-ingest", ack=True)
    outbox = tmp_path / "outbox" / "proc-1.sqlite"
    proc = _device_process(model_dir, mosquitto, tmp_path)
    try:
        assert ingest.wait_for(lambda: len(ingest.seqs("proc-1")) >= 5, 40)
        ingest.acking.clear()  # from now on received, not acknowledged
        assert ingest.wait_for(lambda: len(ingest.seqs("proc-1")) >= 30, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        held = _read_outbox(outbox)
        delivered_unacked = set(held) & ingest.seqs("proc-1")
        assert len(delivered_unacked) >= 20, "messages the broker had acknowledged were deleted"
        ingest.acking.set()
        proc = _device_process(model_dir, mosquitto, tmp_path)
        # the restarted device publishes them again, the ingest acknowledges, the outbox empties
        assert ingest.wait_for(lambda: not set(held) & set(_read_outbox(outbox)), 40), (
            f"still held: {sorted(set(held) & set(_read_outbox(outbox)))[:20]}"
        )
        assert ingest.wait_for(lambda: max(ingest.seqs("proc-1")) > max(held), 20), "no new messages"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        ingest.close()
    assert set(held) <= ingest.seqs("proc-1")
    assert ingest.duplicates("proc-1") >= len(delivered_unacked)
    assert ingest.invalid == []
