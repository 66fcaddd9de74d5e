"""Sensor sources: serial over a pseudo-terminal (garbage included), synthetic faults, replay files."""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.errors import SourceError
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.pipeline import DeviceCore
from edgefleet.edge.sources import Chunk, open_source
from edgefleet.edge.sources.serial import SerialSource
from edgefleet.edge.sources.synthetic import parse_faults
from edgefleet.edge.windowing import Windower


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def read_all(source: SerialSource, want: int, timeout: float = 5.0) -> Chunk:
    parts: list[Chunk] = []
    deadline = time.monotonic() + timeout
    while sum(len(p) for p in parts) < want and time.monotonic() < deadline:
        chunk = source.read(64)
        assert chunk is not None
        parts.append(chunk)
    return Chunk(np.concatenate([p.samples for p in parts]), np.concatenate([p.timestamps for p in parts]))


def test_serial_lines_parse_with_and_without_device_time(pty_pair: tuple[int, str]) -> None:
    master, port = pty_pair
    source = open_source(f"serial:{port}@115200")
    assert isinstance(source, SerialSource)
    os.write(master, b"0.01,0.02,1.0,0.5,-0.5,0.1\r\n1000,0.01,0.02,1.0,0.5,-0.5,0.1\n")
    chunk = read_all(source, 2)
    source.close()
    np.testing.assert_allclose(chunk.samples[0], [0.01, 0.02, 1.0, 0.5, -0.5, 0.1])
    assert chunk.timestamps[0] == 0.0  # nominal time from the sample count
    assert chunk.timestamps[1] == 1.0  # the device's milliseconds
    assert source.malformed == 0


def test_serial_garbage_is_counted_never_crashes_and_faults(
    pty_pair: tuple[int, str], model_dir: Path
) -> None:
    master, port = pty_pair
    source = SerialSource(port, timeout_s=0.02)
    rng = np.random.default_rng(0)
    good = dsp.VibrationSynth(seed=12).read(128 * 4).samples
    lines = [",".join(f"{v:.5f}" for v in row).encode() for row in good]
    garbage = [
        b"0.1,0.2,0.3",  # truncated
        b"nan,0,1,0,0,0",  # NaN
        b"inf,0,1,0,0,0",  # inf
        b"9.9,0,1,0,0,0",  # out of range for +-2 g
        bytes(rng.integers(0, 256, 40, dtype=np.uint8)).replace(b"\n", b""),  # binary noise
        b"x" * 400,  # a runaway line
    ]
    stream = lines[:128] + [g for g in garbage for _ in range(30)] + lines[128:]
    writer = threading.Thread(target=os.write, args=(master, b"\n".join(stream) + b"\n"))
    writer.start()  # a pty buffers a few KB only: write while we read
    chunk = read_all(source, len(stream), timeout=10.0)
    writer.join(5)
    source.close()
    assert len(chunk) == len(stream)
    assert source.malformed == 30 * 3  # truncated, binary noise, runaway line
    core = DeviceCore(DeviceConfig(device_id="d"), load_model_dir(model_dir))
    windower = Windower(128, 128, 6)
    pairs = windower.push(chunk.samples, chunk.timestamps)
    results = core.process(np.stack([w for w, _ in pairs]), np.stack([t for _, t in pairs]))
    assert results[0].state != "rejected"
    assert any(r.state == "rejected" for r in results)
    assert {"malformed", "nonfinite", "out_of_range"} <= set(core.rejects.total)


def test_serial_port_that_does_not_exist() -> None:
    with pytest.raises(SourceError, match="cannot open serial port"):
        SerialSource("/dev/does-not-exist")


def test_synthetic_faults_switch_on_at_their_time() -> None:
    source = open_source("synthetic:4", faults="imbalance@1x2,normal@2")
    assert source.read(200) is not None  # first second normal
    chunk = source.read(200)
    assert chunk is not None and np.ptp(chunk.samples[:, 0]) > 0.5  # 2x imbalance shakes
    assert parse_faults("speed@10x1.2,gain@5x0.8") == [(10.0, "speed", 1.2), (5.0, "gain", 0.8)]
    with pytest.raises(SourceError, match="unknown fault"):
        parse_faults("wobble@3")
    with pytest.raises(SourceError, match="bad fault item"):
        parse_faults("imbalance@soon")


def test_replay_reads_a_table_csv_in_order(tmp_path: Path) -> None:
    samples = np.arange(300 * 6, dtype=float).reshape(300, 6) / 1000
    dsp.write_table_csv(tmp_path / "rec.csv", samples, ["normal"] * 300, dsp.AXES)
    source = open_source(f"replay:{tmp_path / 'rec.csv'}")
    parts = []
    while (chunk := source.read(128)) is not None:
        parts.append(chunk.samples)
    np.testing.assert_allclose(np.concatenate(parts), samples, atol=1e-6)


def test_replay_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ax,ay,az,gx,gy,gz,label\n1,2,3\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"bad\.csv"):
        open_source(f"replay:{bad}")
    with pytest.raises(SourceError, match="unknown source"):
        open_source("carrier-pigeon:1")


def test_the_example_device_config_loads(tmp_path: Path) -> None:
    from edgefleet.edge.config import load_device_config
    from edgefleet.edge.errors import ConfigError

    example = Path(__file__).resolve().parents[2] / "configs/device.yaml"
    cfg = load_device_config(example, device_id="other-1")
    assert cfg.device_id == "other-1" and cfg.commissioning.windows == 400
    bad = tmp_path / "bad.yaml"
    bad.write_text("device_id: x\nwobble: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_device_config(bad)


def test_a_device_reads_a_live_serial_sensor_at_its_own_pace(
    pty_pair: tuple[int, str], tmp_path: Path, model_dir: Path
) -> None:
    from edgefleet.edge.clock import ClockConfig
    from edgefleet.edge.config import OutboxConfig
    from edgefleet.edge.device import Device

    master, port = pty_pair
    samples = dsp.VibrationSynth(seed=12).read(128 * 10).samples
    payload = b"".join(",".join(f"{v:.5f}" for v in row).encode() + b"\n" for row in samples)
    cfg = DeviceConfig(
        device_id="serial-1", outbox=OutboxConfig(directory=tmp_path), clock=ClockConfig(enabled=False)
    )
    device = Device(cfg, load_model_dir(model_dir), SerialSource(port, timeout_s=0.02), connect=False)
    writer = threading.Thread(target=os.write, args=(master, payload))
    writer.start()
    stop = threading.Event()
    runner = threading.Thread(target=device.run, args=(stop,), kwargs={"max_stream_s": 128 * 10 / 200})
    runner.start()
    runner.join(20)
    stop.set()
    writer.join(5)
    assert not runner.is_alive()
    assert device.core.windows_seen == 10 and device.core.rejects.total == {}
    device.close()
