"""A device whose outbox disk fails, against a real Mosquitto and a fake ingest that acknowledges.

Two real SQLite error paths:
- disk full (SQLITE_FULL): the outbox on a small tmpfs, filled up, then freed. Mounting needs root:
  elsewhere the test skips, and fails under CI.
- I/O error (SQLITE_IOERR_WRITE): a device process whose file size limit (RLIMIT_FSIZE, set from
  outside with prlimit) stops its outbox files from growing, then is lifted. Needs no privilege.

In both the device loop and the MQTT link keep running, what cannot be stored is lost and counted
(`outbox_dropped`, reason `write_error`; `outbox_errors`), and everything stored is delivered and
acknowledged once the disk takes writes again."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from edgefleet.contracts import Telemetry
from edgefleet.edge.device import Device
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.sources.synthetic import SyntheticSource
from tests.edge.mqtt_helpers import Collector, Running, delivery_config, recording, toggling_faults
from tests.support.disk import CannotInjectError, fill, tmpfs
from tests.support.services import MosquittoBroker, in_ci

pytestmark = pytest.mark.needs("mosquitto")


@contextmanager
def small_tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the test (root only), always unmounted."""
    with ExitStack() as stack:
        try:
            disk = stack.enter_context(tmpfs(path, size))
        except CannotInjectError as err:
            if in_ci():
                pytest.fail(f"CI requires the disk-full test: {err}", pytrace=False)
            pytest.skip(str(err))
        yield disk


def _errors_reported(ingest: Collector, device_id: str) -> list[Telemetry]:
    return [t for t in ingest.telemetry() if t.device_id == device_id and t.outbox_errors > 0]


def test_disk_full_the_device_keeps_running_counts_the_loss_and_recovers(
    mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        ingest = Collector(mosquitto.url, client_id="fake-ingest", ack=True)
        device = Device(
            delivery_config(mosquitto.url, disk / "outbox", "dev-1"),
            load_model_dir(model_dir),
            SyntheticSource(seed=3, faults=toggling_faults()),
        )
        stored = recording(device)
        run = Running(device, 20.0)
        link = device.link
        assert link is not None and link._thread is not None
        try:
            assert ingest.wait_for(lambda: len(ingest.seqs("dev-1")) >= 10, 20)
            filler = fill(disk)
            full_at = (device.samples_read, len(stored))
            assert ingest.wait_for(lambda: device.outbox.failing and stored.not_stored >= 5, 10)
            time.sleep(2.0)
            # the loop and the link kept running; nothing was stored; the losses are counted
            assert device.samples_read > full_at[0] + 1000
            assert run.thread.is_alive() and link._thread.is_alive() and link.connected.is_set()
            assert device.outbox.errors >= stored.not_stored
            lost = {(kind, reason): n for (kind, reason), n in device.outbox.drops().items()}
            assert lost.get(("telemetry", "write_error"), 0) >= 1
            assert sum(lost.values()) == stored.not_stored
            filler.unlink()  # space is back
            assert ingest.wait_for(lambda: not device.outbox.failing and len(stored) > full_at[1] + 5, 10)
            assert ingest.wait_for(lambda: bool(_errors_reported(ingest, "dev-1")), 10)
            run.stop.set()
            run.thread.join(10)
            assert ingest.wait_for(lambda: device.outbox.depth() == 0, 15), link.stats
        finally:
            run.close()
            ingest.close()
    report = _errors_reported(ingest, "dev-1")[0]
    assert report.outbox_dropped > 0
    assert ingest.seqs("dev-1") == set(stored), "a message that was stored was not delivered"
    assert ingest.invalid == []


def _outbox_files(directory: Path) -> list[Path]:
    return [p for p in directory.glob("proc-2.sqlite*") if p.is_file()]


def test_io_errors_in_a_device_process_are_survived(
    mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> None:
    ingest = Collector(mosquitto.url, client_id="fake-ingest", ack=True)
    outbox_dir = tmp_path / "outbox"
    config = tmp_path / "device.yaml"
    config.write_text(
        "device_id: proc-2\n"
        "mqtt: {backoff_min_s: 0.05, backoff_max_s: 0.5, ack_timeout_s: 1.0, ack_timeout_max_s: 4.0}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgefleet",
            "device",
            "run",
            "--id",
            "proc-2",
            "--config",
            str(config),
            "--model",
            str(model_dir),
            "--broker",
            mosquitto.url,
            "--source",
            "synthetic:3",
            "--faults",
            toggling_faults(),
            "--outbox-dir",
            str(outbox_dir),
            "--no-ntp",
            "--speed",
            "20",
            "--telemetry-interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # a pipe: the file size limit applies to files only
        env={**os.environ, "EDGEFLEET_LOG_LEVEL": "WARNING"},
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(lambda: proc.stderr.readline().decode(errors="replace"), "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        assert ingest.wait_for(lambda: len(ingest.seqs("proc-2")) >= 20, 40), "".join(lines)
        # no outbox file may grow from now on: the next write that needs a new page fails (EFBIG)
        limit = max(p.stat().st_size for p in _outbox_files(outbox_dir))
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
        assert ingest.wait_for(lambda: any("storage error" in line for line in lines), 15), "".join(lines)
        time.sleep(2.0)
        assert proc.poll() is None, "".join(lines)
        before = max(ingest.seqs("proc-2"))
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (hard, hard))  # the disk takes writes again
        assert ingest.wait_for(lambda: bool(_errors_reported(ingest, "proc-2")), 15), "".join(lines)
        assert ingest.wait_for(lambda: max(ingest.seqs("proc-2")) > before + 10, 15)
        assert any("writable again" in line for line in lines), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        ingest.close()
    report = _errors_reported(ingest, "proc-2")[0]
    assert report.outbox_errors > 0 and report.outbox_dropped > 0
    assert proc.returncode == 0, "".join(lines)
    assert not any("Traceback" in line for line in lines), "".join(lines)
    assert ingest.invalid == []
