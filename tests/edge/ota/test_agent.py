"""The OTA agent inside a device (no broker): the whole update, refusals, pending, rollback, restarts."""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefleet.contracts import ModelManifest, OtaCommand, OtaState, decode_topic, utc_now
from edgefleet.edge.clock import ClockConfig
from edgefleet.edge.config import DeviceConfig, MqttConfig, OtaConfig, OutboxConfig
from edgefleet.edge.device import Device
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.ota.slots import OtaJournal
from edgefleet.edge.pipeline import WindowResult
from edgefleet.edge.sources.synthetic import SyntheticSource
from tests.edge.ota.conftest import PACKAGE_PATH, Models
from tests.edge.ota.kit import SECRET, USER, PackageServer, SigningKey, copy_model, manifest_for, package_of

DEVICE = "dev-ota"


class Rig:
    """A device with OTA on, driven step by step, and its OTA messages read from its outbox."""

    def __init__(self, tmp_path: Path, models: Models, key: SigningKey, **ota: Any) -> None:
        self.tmp_path, self.models, self.key, self.ota = tmp_path, models, key, ota
        self.commands = 0
        self.device = self.boot()

    def boot(self) -> Device:
        config = DeviceConfig(
            device_id=DEVICE,
            mqtt=MqttConfig(username=USER, password=SECRET),
            outbox=OutboxConfig(directory=self.tmp_path / "outbox"),
            clock=ClockConfig(enabled=False),
            ota=OtaConfig(
                enabled=True,
                directory=self.tmp_path / "ota",
                trusted_keys=[self.key.trusted],
                backoff_min_s=0.01,
                backoff_max_s=0.05,
                **{"pending_windows": 5, **self.ota},
            ),
        )
        device = Device(config, load_model_dir(self.models.v1), SyntheticSource(seed=3), connect=False)
        device.start(sync_clock=False)
        return device

    def restart(self) -> None:
        """Stop without any clean-up of the OTA state (as after a power cut), then boot again."""
        self.device.close(graceful=False)
        self.device = self.boot()

    def close(self) -> None:
        self.device.close()

    @property
    def journal(self) -> OtaJournal:
        assert self.device.ota is not None
        return self.device.ota.journal

    def send(self, action: str, manifest: ModelManifest | None = None, command_id: str | None = None) -> str:
        assert self.device.ota is not None
        self.commands += 1
        command_id = command_id or f"c{self.commands}"
        self.device.ota.submit(
            OtaCommand(
                device_id=DEVICE,
                command_id=command_id,
                ts=utc_now(),
                action=action,  # type: ignore[arg-type]
                rollout_id="r1",
                manifest=manifest,
            )
        )
        return command_id

    def states(self) -> list[OtaState]:
        out = []
        for message in self.device.outbox.pending(limit=10_000):
            if message.topic.endswith("/ota/state"):
                _, decoded = decode_topic(message.topic, message.payload)
                assert isinstance(decoded, OtaState)
                out.append(decoded)
        return out

    def names(self) -> list[str]:
        return [s.state for s in self.states()]

    def pump(self, until: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out; OTA states so far: {self.names()}"
            self.device.step(256)
            time.sleep(0.005)

    def last(self) -> OtaState:
        return self.states()[-1]


@pytest.fixture
def rig(tmp_path: Path, models: Models, signing_key: SigningKey) -> Iterator[Rig]:
    r = Rig(tmp_path, models, signing_key)
    yield r
    r.close()


def final(rig: Rig) -> Callable[[], bool]:
    return lambda: bool(rig.states()) and rig.last().state in ("UPDATED", "FAILED", "ROLLED_BACK")


def test_an_update_downloads_verifies_switches_and_confirms(
    rig: Rig, manifest: ModelManifest, models: Models, server: PackageServer
) -> None:
    assert rig.device.model_version == "0.0.1" and rig.journal.active is None
    rig.send("update", manifest)
    rig.pump(final(rig))
    names = rig.names()
    assert names[0] == "DOWNLOADING" and names[-4:] == ["DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    progress = [s.progress or 0.0 for s in rig.states() if s.state == "DOWNLOADING"]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) <= 11
    done = rig.last()
    assert (done.model_id, done.model_version, done.active_slot, done.rollout_id) == (
        "test-ae",
        "0.0.2",
        "A",
        "r1",
    )
    assert rig.device.model_version == "0.0.2" and rig.device.core.card is not None
    status = json.loads(rig.device._status_payload("online"))
    assert status["model_version"] == "0.0.2"
    j = rig.journal
    assert (j.active, j.previous, j.pending, j.job) == ("A", None, False, None)
    assert j.slots["A"].confirmed and j.slots["A"].package_sha256 == manifest.sha256
    slot = rig.tmp_path / "ota/A"
    assert sorted(p.name for p in slot.iterdir()) == ["model.tflite", "model_card.json", "package.sha256"]
    assert (slot / "model.tflite").read_bytes() == (models.v2 / "model.tflite").read_bytes()

    # the same version again (a new command) is already done; the same command gets the same answer
    before = len(rig.states())
    rig.send("update", manifest)
    rig.pump(lambda: len(rig.states()) > before)
    assert rig.names()[before:] == ["UPDATED"]
    rig.send("update", manifest, command_id="c1")
    rig.pump(lambda: len(rig.states()) > before + 1)
    assert rig.last().state == "UPDATED" and len(server.ranges(PACKAGE_PATH)) == 1


def test_a_restart_keeps_the_confirmed_model(rig: Rig, manifest: ModelManifest) -> None:
    rig.send("update", manifest)
    rig.pump(final(rig))
    rig.restart()
    assert rig.device.model_version == "0.0.2" and rig.journal.active == "A"
    assert not rig.journal.pending


@pytest.fixture
def v3(models: Models, server: PackageServer, signing_key: SigningKey, tmp_path: Path) -> ModelManifest:
    directory = copy_model(models.v2, tmp_path / "v3", model_version="0.0.3")
    data = package_of(directory)
    server.files["/ota/packages/v3"] = data
    return manifest_for(data, server.url("/ota/packages/v3"), signing_key, models.v2_self_test)


def test_updates_alternate_slots_and_rollback_goes_to_the_previous(
    rig: Rig, manifest: ModelManifest, v3: ModelManifest
) -> None:
    rig.send("update", manifest)
    rig.pump(final(rig))
    rig.send("update", v3)
    rig.pump(lambda: rig.last().model_version == "0.0.3" and final(rig)())
    assert rig.last().state == "UPDATED" and rig.last().active_slot == "B"
    assert (rig.journal.active, rig.journal.previous) == ("B", "A")
    assert rig.device.model_version == "0.0.3"
    rig.send("rollback")
    rig.pump(lambda: rig.last().state == "ROLLED_BACK")
    back = rig.last()
    assert (back.reason, back.model_version, back.active_slot) == ("requested", "0.0.3", "A")
    assert rig.device.model_version == "0.0.2"
    assert (rig.journal.active, rig.journal.previous) == ("A", None)
    rig.send("rollback")  # nothing recorded behind A: the factory model
    rig.pump(lambda: rig.last().active_slot is None)
    assert rig.device.model_version == "0.0.1" and rig.last().state == "ROLLED_BACK"


@pytest.mark.parametrize(
    "case", ["tampered", "unknown_key", "self_test", "incompatible", "signed_truncated_model", "older"]
)
def test_a_refused_package_is_reported_and_never_runs(
    tmp_path: Path,
    models: Models,
    signing_key: SigningKey,
    server: PackageServer,
    manifest: ModelManifest,
    case: str,
) -> None:
    rig = Rig(tmp_path, models, signing_key)
    try:
        if case == "tampered":
            data = bytearray(models.v2_package)
            data[2000] ^= 0x10
            server.files[PACKAGE_PATH] = bytes(data)
        elif case == "unknown_key":
            manifest = manifest_for(models.v2_package, manifest.url, SigningKey(), models.v2_self_test)
        elif case == "self_test":
            wrong = [
                c.model_copy(update={"expected_int8": [127] * len(c.expected_int8)})
                for c in manifest.self_test
            ]
            manifest = manifest.model_copy(update={"self_test": wrong})
        elif case == "signed_truncated_model":  # a registry that signed a damaged model
            cut = copy_model(models.v2, tmp_path / "cut")
            tflite = (cut / "model.tflite").read_bytes()[:1000]
            (cut / "model.tflite").write_bytes(tflite)
            card = json.loads((cut / "model_card.json").read_text(encoding="utf-8"))
            card["flash_bytes"] = len(tflite)
            (cut / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
            server.files[PACKAGE_PATH] = package_of(cut)
            manifest = manifest_for(
                server.files[PACKAGE_PATH], manifest.url, signing_key, models.v2_self_test
            )
        elif case == "older":  # a replayed, validly signed manifest of an older version
            older = package_of(copy_model(models.v2, tmp_path / "older", model_version="0.0.0"))
            server.files[PACKAGE_PATH] = older
            manifest = manifest_for(older, manifest.url, signing_key, models.v2_self_test)
        else:
            camera = package_of(copy_model(models.v2, tmp_path / "cam", device_kind="camera"))
            server.files[PACKAGE_PATH] = camera
            manifest = manifest_for(camera, manifest.url, signing_key, models.v2_self_test)
        rig.send("update", manifest)
        rig.pump(final(rig))
        failed = rig.last()
        expected = {
            "tampered": "sha256_mismatch",
            "unknown_key": "unknown_key",
            "self_test": "self_test_failed",
            "incompatible": "incompatible:kind",
            "signed_truncated_model": "bad_model",
            "older": "older_version",
        }[case]
        assert failed.state == "FAILED" and str(failed.reason).startswith(expected + ":"), failed.reason
        assert "UPDATING" not in rig.names() and "VERIFIED" not in rig.names()
        assert rig.device.model_version == "0.0.1" and failed.active_slot is None
        j = rig.journal
        assert (j.active, j.job, j.slots) == (None, None, {})
        assert list((tmp_path / "ota/A").iterdir()) == [], "nothing of a refused package stays"
        rig.restart()
        assert rig.device.model_version == "0.0.1"
    finally:
        rig.close()


def test_an_inference_failure_while_pending_rolls_back(
    tmp_path: Path,
    models: Models,
    signing_key: SigningKey,
    manifest: ModelManifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(tmp_path, models, signing_key, pending_windows=10_000)
    try:
        rig.send("update", manifest)
        rig.pump(lambda: rig.journal.pending)
        assert rig.device.model_version == "0.0.2" and rig.last().state == "UPDATING"

        def broken(*args: object) -> list[WindowResult]:
            raise RuntimeError("TFLM invoke failed: arena overrun")

        monkeypatch.setattr(rig.device.core, "process", broken)
        rig.pump(lambda: rig.last().state == "ROLLED_BACK")
        monkeypatch.undo()
        back = rig.last()
        assert str(back.reason).startswith("inference_error: ") and back.model_version == "0.0.2"
        assert back.rollout_id == "r1" and back.active_slot is None
        assert rig.device.model_version == "0.0.1" and not rig.journal.pending
        rig.device.step(512)  # the device keeps running on the previous model
        assert rig.device.core.windows_seen > 0
    finally:
        rig.close()


def window(i: int, state: str = "normal", score: float | None = 0.5) -> WindowResult:
    return WindowResult(i, score, 1.0, state, False, [], None, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        ([window(i, "rejected", None) for i in range(5)], "guard_rejects"),
        ([window(0, score=float("nan"))], "health"),
    ],
)
def test_failed_health_checks_while_pending_roll_back(
    tmp_path: Path,
    models: Models,
    signing_key: SigningKey,
    manifest: ModelManifest,
    results: list[WindowResult],
    reason: str,
) -> None:
    rig = Rig(tmp_path, models, signing_key, pending_windows=5)
    try:
        rig.send("update", manifest)
        rig.pump(lambda: rig.journal.pending)
        assert rig.device.ota is not None
        rig.device.ota.after_windows(results)
        assert rig.last().state == "ROLLED_BACK" and str(rig.last().reason).startswith(reason + ":")
        assert rig.device.model_version == "0.0.1"
    finally:
        rig.close()


def test_restarts_while_pending_are_counted_and_too_many_roll_back(
    tmp_path: Path, models: Models, signing_key: SigningKey, manifest: ModelManifest
) -> None:
    rig = Rig(tmp_path, models, signing_key, pending_windows=10_000, max_pending_boots=1)
    try:
        rig.send("update", manifest)
        rig.pump(lambda: rig.journal.pending)
        rig.restart()  # one restart is tolerated: still the new model, still pending
        assert rig.device.model_version == "0.0.2"
        assert (rig.journal.pending, rig.journal.pending_boots) == (True, 1)
        rig.restart()  # the second is a crash loop: back to the factory model
        assert rig.device.model_version == "0.0.1"
        assert (rig.journal.active, rig.journal.pending, rig.journal.slots) == (None, False, {})
        back = rig.last()
        assert back.state == "ROLLED_BACK" and str(back.reason).startswith("pending_crash: ")
        assert (back.model_version, back.rollout_id) == ("0.0.2", "r1")
    finally:
        rig.close()


def test_a_damaged_active_slot_falls_back_at_boot(rig: Rig, manifest: ModelManifest) -> None:
    rig.send("update", manifest)
    rig.pump(final(rig))
    rig.device.close()
    model = rig.tmp_path / "ota/A/model.tflite"
    model.write_bytes(model.read_bytes()[:-10])
    rig.device = rig.boot()
    assert rig.device.model_version == "0.0.1" and rig.journal.active is None
    assert rig.last().state == "ROLLED_BACK" and str(rig.last().reason).startswith("slot_corrupt: ")


def test_cancel_stops_a_download_and_busy_while_pending(
    tmp_path: Path,
    models: Models,
    signing_key: SigningKey,
    manifest: ModelManifest,
    server: PackageServer,
    v3: ModelManifest,
) -> None:
    rig = Rig(tmp_path, models, signing_key, pending_windows=10_000)
    try:
        server.chunk, server.delay_s = 256, 0.02
        rig.send("update", manifest)
        rig.pump(lambda: rig.names().count("DOWNLOADING") >= 2)
        rig.send("cancel")
        rig.pump(final(rig))
        assert rig.last().state == "FAILED" and str(rig.last().reason).startswith("cancelled: ")
        assert rig.journal.job is None and not (tmp_path / "ota/A/package.part").exists()
        assert rig.device.model_version == "0.0.1"

        server.delay_s = 0.0
        rig.send("update", manifest)
        rig.pump(lambda: rig.journal.pending)
        rig.send("update", v3)
        rig.pump(lambda: rig.last().state == "FAILED")
        assert str(rig.last().reason).startswith("busy: ") and rig.last().model_version == "0.0.3"
        assert rig.device.model_version == "0.0.2" and rig.journal.pending
    finally:
        rig.close()


def test_status_and_telemetry_name_the_active_model(rig: Rig, manifest: ModelManifest) -> None:
    rig.send("update", manifest)
    rig.pump(final(rig))
    rig.device._emit_telemetry(1.0)
    telemetry = [m for m in rig.device.outbox.pending(limit=10_000) if m.topic.endswith("/telemetry")]
    assert json.loads(telemetry[-1].payload)["model_version"] == "0.0.2"
    assert np.isfinite(rig.device.core.threshold or np.nan)
