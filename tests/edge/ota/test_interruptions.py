"""The interruption matrix: a real device process killed at each step of an update, then restarted.

`python -m edgefleet device run` with a synthetic source against a private Mosquitto and the local
package server; the test plays the server (publishes on `ota/cmd`, collects `ota/state`). The kill
is the `EDGEFLEET_OTA_CRASH_AT` hook (`os._exit(137)` at a named step) or a SIGKILL from outside.
After the restart the device must run a verified model and its last `ota/state` must be right.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import (
    Channel,
    ModelManifest,
    OtaCommand,
    OtaState,
    Status,
    encode,
    sha256_hex,
    topic_for,
    utc_now,
)
from edgefleet.edge.ota import CRASH_ENV
from tests.edge.mqtt_helpers import Collector
from tests.edge.ota.conftest import PACKAGE_PATH, Models
from tests.edge.ota.kit import SECRET, USER, PackageServer, SigningKey
from tests.support.services import MosquittoBroker

pytestmark = pytest.mark.needs("mosquitto")
DEVICE = USER
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Field:
    """One device's disk (outbox, OTA slots) and the processes that ran on it."""

    tmp_path: Path
    broker: MosquittoBroker
    models: Models
    key: SigningKey
    collector: Collector
    runs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ota_dir(self) -> Path:
        return self.tmp_path / "ota"

    def config(self) -> Path:
        path = self.tmp_path / "device.yaml"
        path.write_text(
            f"device_id: {DEVICE}\n"
            "mqtt: {username: %s, password: %s, backoff_min_s: 0.05, backoff_max_s: 0.3, keepalive_s: 5}\n"
            "clock: {enabled: false}\n"
            "ota: {enabled: true, pending_windows: 8, max_pending_boots: 1,"
            " backoff_min_s: 0.05, backoff_max_s: 0.2}\n" % (USER, SECRET),
            encoding="utf-8",
        )
        return path

    def start(self, crash_at: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at:
            env[CRASH_ENV] = crash_at
        n = len(self.runs)
        log = (self.tmp_path / f"run{n}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "device",
                "run",
                "--id",
                DEVICE,
                "--model",
                str(self.models.v1),
                "--broker",
                self.broker.url,
                "--source",
                "synthetic:3",
                "--config",
                str(self.config()),
                "--outbox-dir",
                str(self.tmp_path / "outbox"),
                "--ota-dir",
                str(self.ota_dir),
                "--trust-key",
                f"{self.key.key_id}:{self.key.public_b64}",
                "--no-ntp",
                "--speed",
                "20",
                "--telemetry-interval",
                "5",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.runs.append(process)
        return process

    def log(self, n: int) -> str:
        return (self.tmp_path / f"run{n}.log").read_text(encoding="utf-8", errors="replace")

    def online(self, after: int = 0) -> bool:
        return any(s.state == "online" for s in self.collector.statuses()[after:])

    def wait_online(self, after: int = 0) -> None:
        process = self.runs[-1]
        up = self.collector.wait_for(lambda: self.online(after) or process.poll() is not None, 30)
        assert up and process.poll() is None, self.log(len(self.runs) - 1)

    def send(self, manifest: ModelManifest, command_id: str = "cmd-1") -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"server-{command_id}")
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        command = OtaCommand(
            device_id=DEVICE,
            command_id=command_id,
            ts=utc_now(),
            action="update",
            rollout_id="rollout-1",
            manifest=manifest,
        )
        client.publish(topic_for(DEVICE, Channel.OTA_CMD), encode(command), qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()

    def states(self) -> list[OtaState]:
        """Every OtaState once (a resend is the same seq), in the device's order."""
        unique = {m.seq: m for m in self.collector.of_type(OtaState) if isinstance(m, OtaState)}
        return [unique[seq] for seq in sorted(unique)]

    def last_state(self) -> OtaState | None:
        states = self.states()
        return states[-1] if states else None

    def wait_state(self, state: str, version: str, timeout: float = 40.0) -> None:
        def reached() -> bool:
            last = self.last_state()
            return last is not None and (last.state, last.model_version) == (state, version)

        ok = self.collector.wait_for(reached, timeout)
        assert ok, (
            f"no {state} {version}; states {[s.state for s in self.states()]}\n{self.log(len(self.runs) - 1)}"
        )

    def crashed(self, process: subprocess.Popen[bytes], code: int = 137) -> None:
        try:
            rc = process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"the device did not die:\n{self.log(len(self.runs) - 1)}") from None
        assert rc == code, self.log(len(self.runs) - 1)

    def stop(self, process: subprocess.Popen[bytes]) -> dict[str, object]:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, self.log(len(self.runs) - 1)
        text = self.log(len(self.runs) - 1)
        start = text.rindex('{\n  "device_id"')
        summary: dict[str, object] = json.loads(text[start:])
        return summary

    def journal(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.ota_dir / "state.json").read_text(encoding="utf-8"))
        return data

    def running_versions(self, after: int) -> set[str | None]:
        return {s.model_version for s in self.collector.statuses()[after:] if s.state == "online"}

    def close(self) -> None:
        for process in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def rig(
    tmp_path: Path, mosquitto: MosquittoBroker, models: Models, signing_key: SigningKey
) -> Iterator[Field]:
    collector = Collector(mosquitto.url, client_id=f"collector-{tmp_path.name}"[:60], ack=True)
    assert collector.wait_for(collector.client.is_connected, 5)
    f = Field(tmp_path, mosquitto, models, signing_key, collector)
    yield f
    f.close()
    collector.close()


def assert_runs_the_update(rig: Field, models: Models, manifest: ModelManifest, statuses_before: int) -> None:
    rig.wait_state("UPDATED", "0.0.2")
    assert rig.collector.wait_for(lambda: "0.0.2" in rig.running_versions(statuses_before), 10)
    journal = rig.journal()
    assert (journal["active"], journal["pending"], journal["job"]) == ("A", False, None)
    slot = rig.ota_dir / "A"
    assert (slot / "model.tflite").read_bytes() == (models.v2 / "model.tflite").read_bytes()
    assert (slot / "package.sha256").read_text().strip() == manifest.sha256
    assert sha256_hex((slot / "model_card.json").read_bytes()) == manifest.model_card_sha256
    assert not (slot / "package.part").exists()
    done = rig.last_state()
    assert done is not None and (done.rollout_id, done.active_slot) == ("rollout-1", "A")


@pytest.mark.parametrize("crash_at", ["downloading", "downloaded", "verified", "switching", "pending"])
def test_killed_at_each_step_the_device_resumes_and_ends_updated(
    rig: Field, models: Models, manifest: ModelManifest, server: PackageServer, crash_at: str
) -> None:
    first = rig.start(crash_at)
    rig.wait_online()
    rig.send(manifest)
    rig.crashed(first)
    journal = rig.journal()  # what the power cut left on disk
    job = journal["job"]
    part = rig.ota_dir / "A/package.part"
    if crash_at == "pending":
        assert (job, journal["active"], journal["pending"]) == (None, "A", True)
    else:
        assert isinstance(job, dict) and job["phase"] == crash_at and journal["active"] is None
        size = part.stat().st_size
        assert 0 < size < manifest.size if crash_at == "downloading" else size == manifest.size
        assert ("A" in journal["slots"]) == (crash_at == "switching")  # type: ignore[operator]
    # what the first run reported last before it died (delivered from its outbox after the restart)
    reported = {
        "downloading": "DOWNLOADING",
        "downloaded": "DOWNLOADED",
        "verified": "VERIFIED",
        "switching": "UPDATING",
        "pending": "UPDATING",
    }[crash_at]
    statuses = len(rig.collector.statuses())
    second = rig.start()
    assert_runs_the_update(rig, models, manifest, statuses)
    states: list[str] = [s.state for s in rig.states()]
    assert "FAILED" not in states and "ROLLED_BACK" not in states
    assert reported in states and states[-1] == "UPDATED"
    order = ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    firsts = [states.index(name) for name in order]
    assert firsts == sorted(firsts), states
    if crash_at == "downloading":  # the restart fetched only the rest
        ranges = server.ranges(PACKAGE_PATH)
        assert ranges[0] is None and ranges[1] == "bytes=4096-", ranges
    else:
        assert len(server.ranges(PACKAGE_PATH)) == 1, "a complete download is not fetched again"
    summary = rig.stop(second)
    assert summary["model_version"] == "0.0.2" and summary["ota_slot"] == "A"


def test_sigkill_mid_download_resumes(
    rig: Field, models: Models, manifest: ModelManifest, server: PackageServer
) -> None:
    server.chunk, server.delay_s = 512, 0.1
    first = rig.start()
    rig.wait_online()
    rig.send(manifest)

    def partway() -> bool:
        return any(s.state == "DOWNLOADING" and (s.progress or 0) >= 0.3 for s in rig.states())

    assert rig.collector.wait_for(partway, 30), rig.log(0)
    first.send_signal(signal.SIGKILL)
    rig.crashed(first, -signal.SIGKILL)
    server.delay_s = 0.0
    statuses = len(rig.collector.statuses())
    second = rig.start()
    assert_runs_the_update(rig, models, manifest, statuses)
    resumed = [r for r in server.ranges(PACKAGE_PATH) if r]
    assert resumed and int(resumed[0].removeprefix("bytes=").rstrip("-")) >= 0.3 * manifest.size
    rig.stop(second)


def test_a_model_that_crashes_the_device_while_pending_is_rolled_back(
    rig: Field, models: Models, manifest: ModelManifest, server: PackageServer
) -> None:
    """A crash loop on the new model (every boot dies on it): after max_pending_boots restarts the
    device boots back into the factory model and says ROLLED_BACK."""
    first = rig.start("pending")
    rig.wait_online()
    rig.send(manifest)
    rig.crashed(first)
    second = rig.start("pending")  # pending boot 1 of 1 tolerated: runs the new model, dies again
    rig.crashed(second)
    statuses = len(rig.collector.statuses())
    third = rig.start("pending")  # pending boot 2 > 1: rolled back before the model runs
    rig.wait_state("ROLLED_BACK", "0.0.2")
    back = rig.last_state()
    assert back is not None and str(back.reason).startswith("pending_crash: ")
    assert (back.rollout_id, back.active_slot) == ("rollout-1", None)
    assert rig.collector.wait_for(lambda: rig.running_versions(statuses) == {"0.0.1"}, 10)
    assert third.poll() is None, "the device keeps running on the previous model"
    journal = rig.journal()
    assert (journal["active"], journal["pending"], journal["slots"]) == (None, False, {})
    summary = rig.stop(third)
    assert summary["model_version"] == "0.0.1" and summary["ota_slot"] is None
    assert [s for s in rig.collector.statuses() if isinstance(s, Status)]
