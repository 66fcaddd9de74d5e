import numpy as np
import pytest

from edgefleet.dsp import AXES, DspError, MachineConfig, VibrationSynth, band_powers

FS = 200.0


def power_at(samples: np.ndarray, axis: int, lo: float, hi: float) -> float:
    return float(band_powers(samples[:, axis], FS, [(lo, hi)])[0])


def test_same_seed_same_stream_whatever_the_chunking() -> None:
    cfg = MachineConfig(dropouts_per_s=0.5)
    a, b = VibrationSynth(cfg, seed=3), VibrationSynth(cfg, seed=3)
    for gen in (a, b):
        gen.schedule_fault(3.3, "bearing_inner", 1.0)
        gen.schedule_speed(5.0, 1.2)
    whole = a.read(3000)
    parts = [b.read(n) for n in (7, 1000, 93, 1900)]
    np.testing.assert_array_equal(whole.samples, np.concatenate([p.samples for p in parts]))
    np.testing.assert_array_equal(whole.labels, np.concatenate([p.labels for p in parts]))
    assert parts[1].t0_s == pytest.approx(7 / FS)
    assert not np.array_equal(whole.samples, VibrationSynth(cfg, seed=4).read(3000).samples)


def test_schedule_switches_the_fault_at_the_given_time() -> None:
    gen = VibrationSynth(seed=1)
    gen.schedule_fault(2.0, "imbalance", 1.0)
    gen.schedule_fault(4.0, "normal")
    labels = gen.read(1000).labels
    assert set(labels[:400]) == {"normal"}
    assert set(labels[400:800]) == {"imbalance"}
    assert set(labels[800:]) == {"normal"}
    assert gen.fault == "normal" and gen.time_s == pytest.approx(5.0)


def test_healthy_machine_shows_shaft_harmonics_and_gravity() -> None:
    chunk = VibrationSynth(MachineConfig(shaft_hz=15.0, speed_wander=0.0), seed=0).read(2048)
    assert chunk.samples.shape == (2048, len(AXES)) and chunk.samples.dtype == np.float32
    assert np.mean(chunk.samples[:, 2]) == pytest.approx(1.0, abs=0.02)  # az: gravity
    one_x = power_at(chunk.samples, 0, 13, 17)
    assert one_x == pytest.approx(0.05**2 / 2, rel=0.3)
    assert one_x > 20 * power_at(chunk.samples, 0, 80, 100)


@pytest.mark.parametrize(
    ("fault", "lo", "hi"),
    [
        ("imbalance", 13.0, 17.0),  # 1x
        ("misalignment", 28.0, 32.0),  # 2x
        ("looseness", 5.0, 9.0),  # 0.5x sub-harmonic
        ("bearing_outer", 65.0, 85.0),  # impacts ring the 75 Hz resonance
    ],
)
def test_each_fault_raises_its_signature(fault: str, lo: float, hi: float) -> None:
    cfg = MachineConfig(speed_wander=0.0)
    healthy = VibrationSynth(cfg, seed=5).read(4096).samples
    gen = VibrationSynth(cfg, seed=5)
    gen.set_fault(fault, 1.0)
    faulty = gen.read(4096).samples
    assert power_at(faulty, 0, lo, hi) > 5 * power_at(healthy, 0, lo, hi)


def test_saturation_dropouts_and_gain() -> None:
    gen = VibrationSynth(MachineConfig(dropouts_per_s=2.0, impact_g=10.0), seed=2)
    gen.set_fault("bearing_outer", 1.0)
    gen.schedule_gain(5.0, 1.5)
    samples = gen.read(2000).samples
    assert samples[:, :3].max() <= 2.0 and samples[:, :3].min() >= -2.0
    assert np.isclose(np.abs(samples[:, 0]), 2.0).any()  # saturated at +-2 g
    assert np.all(samples == 0.0, axis=1).sum() >= 10  # dropouts read all axes as 0
    no_drop = samples[~np.all(samples == 0.0, axis=1)]
    assert 1.3 < np.median(no_drop[-500:, 2]) / np.median(no_drop[:500, 2]) < 1.7


def test_bad_controls_raise() -> None:
    gen = VibrationSynth()
    with pytest.raises(DspError, match="unknown fault"):
        gen.set_fault("melted")
    with pytest.raises(DspError, match="severity"):
        gen.schedule_fault(1.0, "imbalance", -1.0)
    with pytest.raises(DspError, match="speed"):
        gen.schedule_speed(1.0, 0.0)
    with pytest.raises(DspError, match="six"):
        gen.schedule_gain(1.0, (1.0, 2.0))
    with pytest.raises(DspError, match="Nyquist"):
        MachineConfig(sample_rate_hz=100.0, resonance_hz=75.0)
