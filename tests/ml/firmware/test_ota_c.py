"""The generated OTA state machine (main/ef_ota*.c), compiled on the host with libsodium, driven as
app_main drives it: the interruption matrix of the Python agent's tests (a power cut after every
single journal save, slot erase and slot write of an update, then reboots until the update is done),
refused packages (tampered, wrong key, truncated, older), and the pending checks (self-test, load,
no acknowledged publish, crash loop) that roll back."""

import base64
import ctypes
import hashlib
import zlib
from pathlib import Path

import pytest

from edgefleet.contracts import OtaState
from tests.ml.firmware.ota_c import FACTORY, RELOAD, Server, Storage
from tests.ml.firmware.ota_device import Device, Profile
from tests.ml.firmware.ota_kit import URL, Signer, command, manifest, package, self_test, unloadable_model
from tests.support.tiny_tflite import tiny_fc_model


@pytest.fixture(scope="module")
def lib(ota_lib: ctypes.CDLL) -> ctypes.CDLL:
    return ota_lib


@pytest.fixture(scope="module")
def v2() -> bytes:
    return package("0.0.2")


class Rig:
    """One device's storage, the package server and everything the device reported."""

    def __init__(self, lib: ctypes.CDLL, signer: Signer, files: dict[str, bytes], **profile: object) -> None:
        self.lib, self.storage = lib, Storage()
        self.reports: list[OtaState] = []
        self.server = Server(lib, files=dict(files))
        self.profile = Profile(keys=[signer.trusted], **profile)  # type: ignore[arg-type]
        self.booted: list[bytes | None] = []
        self.devices: list[Device] = []

    def power_on(self, now_ms: int = 0) -> Device:
        """Boot until the device runs (a rollback restarts it)."""
        self.storage.power_on()
        for _ in range(5):
            device = Device(self.lib, self.storage, self.server, self.profile, self.reports)
            self.devices.append(device)
            rc = device.start(now_ms)
            self.booted.append(device.model)
            if rc != RELOAD:
                return device
        raise AssertionError("the device keeps restarting")

    def states(self) -> list[str]:
        return [r.state for r in self.reports]

    def last(self) -> OtaState:
        return self.reports[-1]


def updated_to(rig: Rig, device: Device, version: str, slot: int) -> None:
    last = rig.last()
    assert (last.state, last.model_version, last.rollout_id) == ("UPDATED", version, "rollout-1"), (
        rig.states()
    )
    assert last.active_slot == "AB"[slot] and device.active == slot and not device.pending
    assert sum(d.confirmed for d in rig.devices) == 1, "the platform marks the model valid once"


def test_an_update_reports_each_state_and_is_confirmed_after_the_load_self_test_and_an_ack(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    rig = Rig(lib, signer, {URL: v2})
    device = rig.power_on()
    assert device.active == FACTORY and device.model is None
    assert device.command(command(manifest(v2, signer))) == RELOAD  # switched: the app restarts
    states = rig.states()
    downloading = [float(r.progress or 0) for r in rig.reports if r.state == "DOWNLOADING"]
    assert states == ["DOWNLOADING"] * len(downloading) + ["DOWNLOADED", "VERIFIED", "UPDATING"]
    assert downloading[0] == 0.0 and downloading[-1] == 1.0 and downloading == sorted(set(downloading))
    assert len({int(10 * p) for p in downloading}) == len(downloading), "at most one report per tenth"
    assert rig.reports[-3].progress == 1.0 and all(r.model_version == "0.0.2" for r in rig.reports)
    device = rig.power_on()
    assert device.active == 0 and device.pending and device.model == tiny_fc_model(9)
    assert rig.states()[-1] == "UPDATING", "not confirmed before an acknowledged publish"
    device.acked()
    updated_to(rig, device, "0.0.2", 0)
    assert rig.server.offsets == [0]
    again = rig.power_on()
    assert again.active == 0 and not again.pending and rig.states().count("UPDATED") == 1
    assert again.command(command(manifest(v2, signer), "cmd-2")) == 0 and rig.last().state == "UPDATED", (
        "running"
    )
    first_answer = next(r for r in rig.reports if r.state == "UPDATED")
    assert again.command(command(manifest(v2, signer), "cmd-1")) == 0, "redelivered: the same answer"
    same = {"seq", "ts"}
    assert rig.last().model_dump(exclude=same) == first_answer.model_dump(
        exclude=same
    ) and rig.server.offsets == [0]


def run_to_the_end(rig: Rig, payload: bytes) -> None:
    """After a power cut: power on, resume, acknowledge; send the command again if it was lost."""
    for _ in range(6):
        device = rig.power_on()
        assert rig.booted[-1] in (None, tiny_fc_model(9)), "the factory model or the verified one"
        if device.resume() == RELOAD:
            continue
        device.acked()
        if rig.reports and rig.last().state == "UPDATED":
            updated_to(rig, device, "0.0.2", 0)
            return
        if not device.pending and device.command(payload) == RELOAD:
            continue
    raise AssertionError(f"no UPDATED after the power cut: {rig.states()}")


def test_a_power_cut_after_any_write_of_an_update_ends_updated_on_a_verified_model(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    payload = command(manifest(v2, signer))
    probe = Rig(lib, signer, {URL: v2})
    probe.power_on().command(payload)
    probe.power_on().acked()
    total = probe.storage.ops
    assert total > 15
    for cut in range(1, total + 1):
        rig = Rig(lib, signer, {URL: v2})
        device = rig.power_on()
        rig.storage.cut_after = rig.storage.ops + cut
        if device.command(payload) != RELOAD or not rig.storage.dead:
            device = rig.power_on() if not rig.storage.dead else device
            if not rig.storage.dead:
                device.acked()
        run_to_the_end(rig, payload)
        states = rig.states()
        assert "FAILED" not in states and "ROLLED_BACK" not in states, (cut, states)
        # a report queued after the cut is lost with it; those that went out keep their order
        firsts = [
            states.index(s)
            for s in ("DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED")
            if s in states
        ]
        assert firsts == sorted(firsts) and states[-1] == "UPDATED", (cut, states)


@pytest.mark.parametrize("chunk", [512, 100])  # 100: pieces that end inside 16-byte write blocks
def test_a_download_cut_short_resumes_from_its_checkpoint(
    lib: ctypes.CDLL, signer: Signer, chunk: int
) -> None:
    big = package("0.0.2", description="x" * 200) + b""
    rig = Rig(lib, signer, {URL: big})
    rig.server.chunk = chunk
    payload = command(manifest(big, signer))
    device = rig.power_on()
    rig.server.on_chunk = lambda sent: (
        setattr(rig.storage, "cut_after", rig.storage.ops) if sent > len(big) * 0.6 else None
    )
    device.command(payload)
    assert rig.storage.dead and rig.last().state == "DOWNLOADING"
    rig.server.on_chunk = None
    device = rig.power_on()
    assert device.resume() == RELOAD
    assert rig.server.offsets[0] == 0 and rig.server.offsets[1] >= 4096 and rig.server.offsets[1] % 4096 == 0
    rig.power_on().acked()
    assert rig.last().state == "UPDATED"


@pytest.mark.parametrize("cut", [0.0, 0.3])  # before and after the new download's first checkpoint
@pytest.mark.parametrize("why", ["server-ignores-range", "range-not-satisfiable"])
def test_a_power_cut_while_a_download_restarts_from_zero_resumes_from_zero(
    lib: ctypes.CDLL, signer: Signer, why: str, cut: float
) -> None:
    big = package("0.0.2", description="x" * 200)
    rig = Rig(lib, signer, {URL: big})
    rig.server.chunk = 512
    payload = command(manifest(big, signer))

    def cut_at(fraction: float) -> None:
        rig.server.on_chunk = lambda sent: (
            setattr(rig.storage, "cut_after", rig.storage.ops) if sent > len(big) * fraction else None
        )

    cut_at(0.6)
    rig.power_on().command(payload)  # checkpoint past half the package
    assert rig.storage.dead
    serve = rig.server.get
    if why == "server-ignores-range":
        rig.server.ignore_range = True  # 200 with the whole body: restart from zero
    else:

        def range_not_satisfiable_once(url: str, offset: int, h: int) -> int:
            rig.server.get = serve  # type: ignore[method-assign]
            rig.lib.ef_ota_http_begin(h, 416, 0, -1)
            return 0

        rig.server.get = range_not_satisfiable_once  # type: ignore[method-assign]
    device = rig.power_on()
    cut_at(cut)  # the power goes before the new download reaches the old checkpoint
    device.resume()
    assert rig.storage.dead and "FAILED" not in rig.states()
    rig.server.on_chunk, rig.server.ignore_range = None, False
    device = rig.power_on()
    assert device.resume() == RELOAD, rig.states()
    rig.power_on().acked()
    assert rig.last().state == "UPDATED" and "FAILED" not in rig.states(), rig.states()


def test_network_errors_are_retried_with_backoff_and_refusals_are_final(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    rig = Rig(lib, signer, {URL: v2})
    rig.server.fail_next = 2
    device = rig.power_on()
    assert device.command(command(manifest(v2, signer))) == RELOAD
    assert len(device.slept) == 2 and all(10 <= ms <= 80 for ms in device.slept)
    rig = Rig(lib, signer, {URL: v2})
    rig.server.fail_next = 10
    device = rig.power_on()
    device.command(command(manifest(v2, signer)))
    assert rig.last().state == "FAILED" and str(rig.last().reason).startswith(
        "download_failed: gave up after 3"
    )
    for status, name in ((404, "not_found"), (403, "forbidden")):
        rig = Rig(lib, signer, {URL: v2})
        rig.server.status = status
        rig.power_on().command(command(manifest(v2, signer)))
        assert rig.last().reason == f"download_refused: the server answered {status} ({name})"
        assert len(rig.server.offsets) == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("tampered", "sha256_mismatch"),
        ("tampered-with-its-sha", "bad_signature"),
        ("unknown-key", "unknown_key"),
        ("wrong-key-claiming-ours", "bad_signature"),
        ("truncated", "download_failed"),
        ("truncated-with-its-size", "bad_signature"),
        ("signed-truncated", "bad_package"),
        ("older", "older_version"),
        ("other-sensor", "incompatible:sensor"),
        ("newer-runtime", "incompatible:runtime"),
        ("no-self-test", "no_self_test"),
        ("larger-than-announced", "oversize"),
        ("card-mismatch", "card_mismatch"),
    ],
)
def test_refused_packages_fail_and_the_running_model_stays(
    lib: ctypes.CDLL, signer: Signer, v2: bytes, case: str, code: str
) -> None:
    other = Signer()
    served, m = v2, manifest(v2, signer)
    tampered = v2[:-600] + bytes([v2[-600] ^ 1]) + v2[-599:]
    cut = v2[: v2.index(b"TFL3") + 200]  # inside model.tflite
    if case == "tampered":
        served = tampered
    elif case == "tampered-with-its-sha":
        served, m = tampered, manifest(v2, signer, sha256=manifest(tampered, signer).sha256)
    elif case == "unknown-key":
        m = manifest(v2, other)
    elif case == "wrong-key-claiming-ours":
        m = manifest(v2, other, key_id=signer.key_id)
    elif case == "truncated":
        served = cut
    elif case == "truncated-with-its-size":
        served, m = cut, manifest(cut, signer, signature=signer.sign(v2))
    elif case == "signed-truncated":
        served, m = cut, manifest(cut, signer)
    elif case == "older":
        served = package("0.0.1rc0")
        m = manifest(served, signer, version="0.0.1rc0")
    elif case == "other-sensor":
        served = package(sensor={"axes": ["x"], "units": ["g"], "range_min": [-1.0], "range_max": [1.0]})
        m = manifest(served, signer)
    elif case == "newer-runtime":
        m = manifest(v2, signer, min_runtime_version="2.0")
    elif case == "no-self-test":
        m = manifest(v2, signer, self_test=[])
    elif case == "larger-than-announced":
        served = v2 + b"\0" * 512
    elif case == "card-mismatch":
        m = manifest(v2, signer, model_card_sha256="0" * 64)
    rig = Rig(lib, signer, {URL: served})
    if case == "older":  # running 0.0.2 from the factory: a signed 0.0.1rc0 is a replay
        rig.profile.factory = ("tiny-ae", "0.0.2")
    device = rig.power_on()
    assert device.command(command(m)) == 0
    last = rig.last()
    assert (
        last.state == "FAILED"
        and str(last.reason).split(":")[0]
        + (":" + str(last.reason).split(":")[1] if code.startswith("incompatible") else "")
        == code
    ), last.reason
    assert (last.model_version, last.rollout_id, last.active_slot) == (m.model_version, "rollout-1", None)
    assert device.active == FACTORY and rig.power_on().active == FACTORY and rig.booted[-1] is None


def test_an_older_version_passes_when_downgrades_are_allowed(lib: ctypes.CDLL, signer: Signer) -> None:
    older = package("0.0.1rc0")
    rig = Rig(lib, signer, {URL: older}, factory=("tiny-ae", "0.0.2"), allow_downgrade=True)
    assert rig.power_on().command(command(manifest(older, signer, version="0.0.1rc0"))) == RELOAD


def test_a_failing_self_test_rolls_back_to_the_factory_model(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    rig = Rig(lib, signer, {URL: v2})
    assert rig.power_on().command(command(manifest(v2, signer, self_test=self_test(corrupt=True)))) == RELOAD
    device = rig.power_on()  # boots the slot, the self-test fails, restarts on the factory model
    assert rig.booted[-2] is not None and rig.booted[-1] is None and device.active == FACTORY
    last = rig.last()
    assert last.state == "ROLLED_BACK" and str(last.reason).startswith(
        "self_test_failed: case 2: output differs by"
    )
    assert (last.model_version, last.rollout_id, last.active_slot) == ("0.0.2", "rollout-1", None)
    device.acked()
    assert rig.last().state == "ROLLED_BACK" and device.confirmed == 0


def test_a_damaged_model_is_refused_and_one_that_does_not_load_rolls_back(
    lib: ctypes.CDLL, signer: Signer
) -> None:
    broken_model = b"\x1c\x00\x00\x00TFL3" + b"\xff" * 300
    broken = package("0.0.2", tflite=broken_model, flash_bytes=len(broken_model))
    rig = Rig(lib, signer, {URL: broken})
    device = rig.power_on()
    assert device.command(command(manifest(broken, signer))) == 0  # its flatbuffer is walked, as in Python
    assert rig.last().state == "FAILED" and str(rig.last().reason).startswith("bad_model: ")
    assert device.active == FACTORY
    unknown_op = unloadable_model()
    unloadable = package("0.0.2", tflite=unknown_op, flash_bytes=len(unknown_op))
    rig = Rig(lib, signer, {URL: unloadable})
    assert rig.power_on().command(command(manifest(unloadable, signer))) == RELOAD
    device = rig.power_on()
    assert device.active == FACTORY and str(rig.last().reason).startswith("load_failed: ")


def test_no_acknowledged_publish_within_the_bound_rolls_back(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    rig = Rig(lib, signer, {URL: v2}, ack_timeout_ms=5000)
    rig.power_on().command(command(manifest(v2, signer)))
    device = rig.power_on(now_ms=1000)
    assert device.tick(6000) == 0 and device.pending
    assert device.tick(6001) == RELOAD
    assert rig.last().state == "ROLLED_BACK" and str(rig.last().reason).startswith("no_ack: ")
    assert rig.power_on().active == FACTORY


def test_a_crash_loop_while_pending_rolls_back_after_max_pending_boots(
    lib: ctypes.CDLL, signer: Signer, v2: bytes
) -> None:
    rig = Rig(lib, signer, {URL: v2})
    rig.power_on().command(command(manifest(v2, signer)))
    assert rig.power_on().active == 0  # the restart after the switch: not a crash
    assert rig.power_on().active == 0  # crash 1 of 1 tolerated
    device = rig.power_on()  # crash 2: back to the factory model
    last = rig.last()
    assert device.active == FACTORY and last.state == "ROLLED_BACK"
    assert last.reason == "pending_crash: restarted 2 times before the model was confirmed"


def test_rollback_cancel_busy_and_redelivered_commands(lib: ctypes.CDLL, signer: Signer, v2: bytes) -> None:
    rig = Rig(lib, signer, {URL: v2})
    device = rig.power_on()
    device.command(command(None, "rb-0", action="rollback"))
    assert (
        rig.last().reason == "requested: already on the factory model" and rig.last().model_version == "0.0.1"
    )
    device.command(command(manifest(v2, signer)))
    device = rig.power_on()
    other = package("0.0.3")
    device.command(command(manifest(other, signer, version="0.0.3"), "cmd-3"))
    assert rig.last().state == "FAILED" and rig.last().reason == "busy: tiny-ae is pending confirmation"
    device.acked()
    assert device.command(command(None, "rb-1", action="rollback")) == RELOAD
    assert (
        rig.last().state == "ROLLED_BACK"
        and rig.last().reason == "requested"
        and rig.last().active_slot is None
    )
    count = len(rig.reports)
    device = rig.power_on()
    device.command(command(None, "rb-1", action="rollback"))  # redelivered: the same answer, nothing done
    assert (
        len(rig.reports) == count + 1 and rig.reports[-1].state == "ROLLED_BACK" and device.active == FACTORY
    )
    cancelled = Rig(lib, signer, {URL: v2})
    device = cancelled.power_on()
    cancelled.server.chunk = 256

    def cancel_midway(sent: int) -> None:
        device.submit(command(None, "c-9", action="cancel"))

    cancelled.server.on_chunk = cancel_midway
    assert device.command(command(manifest(v2, signer))) == 0
    assert cancelled.last().reason == "cancelled: the update was cancelled" and device.active == FACTORY


def test_a_damaged_slot_is_not_booted(lib: ctypes.CDLL, signer: Signer, v2: bytes, tmp_path: Path) -> None:
    rig = Rig(lib, signer, {URL: v2})
    rig.power_on().command(command(manifest(v2, signer)))
    rig.power_on().acked()
    rig.storage.slots[0][700] ^= 0x01  # a bit of the package flips on flash
    device = rig.power_on()
    assert device.active == FACTORY and rig.booted[-1] is None
    assert rig.last().state == "ROLLED_BACK" and str(rig.last().reason).startswith("slot_corrupt: slot A")
    rig.storage.journal = b"\x00" * 100  # an unreadable journal: the factory model, no crash
    assert rig.power_on().active == FACTORY


def forge_journal(journal: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the one occurrence of `old` and fix the CRC, as someone with UART access can."""
    assert journal.count(old) == 1 and len(old) == len(new)
    body = journal[:-4].replace(old, new)
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.mark.parametrize("attack", ["slot-and-sha", "re-signed-package"])
def test_a_slot_rewritten_with_its_journal_is_not_booted(
    lib: ctypes.CDLL, signer: Signer, v2: bytes, attack: str
) -> None:
    rig = Rig(lib, signer, {URL: v2})
    rig.power_on().command(command(manifest(v2, signer)))
    rig.power_on().acked()
    assert rig.power_on().active == 0, "an untouched slot passes the boot check"
    evil = v2[:700] + bytes([v2[700] ^ 0x01]) + v2[701:]
    ctypes.memmove(rig.storage.slots[0], evil, len(evil))
    assert rig.storage.journal is not None
    journal = forge_journal(rig.storage.journal, hashlib.sha256(v2).digest(), hashlib.sha256(evil).digest())
    if attack == "re-signed-package":  # signed with a key the device does not trust, key id kept
        journal = forge_journal(
            journal, base64.b64decode(signer.sign(v2)), base64.b64decode(Signer().sign(evil))
        )
    rig.storage.journal = journal
    device = rig.power_on()
    assert device.active == FACTORY and rig.booted[-1] is None
    assert rig.last().state == "ROLLED_BACK" and str(rig.last().reason).startswith("slot_corrupt: slot A")


def test_a_slot_model_needs_the_trusted_key_at_boot(lib: ctypes.CDLL, signer: Signer, v2: bytes) -> None:
    rig = Rig(lib, signer, {URL: v2})
    rig.power_on().command(command(manifest(v2, signer)))
    rig.power_on().acked()
    rig.profile.keys = []  # e.g. the identity (and its key) was erased
    assert rig.power_on().active == FACTORY and rig.last().state == "ROLLED_BACK"
