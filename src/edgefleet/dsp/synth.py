"""A physics-based MPU6050 vibration generator for a rotating machine, streaming chunk by chunk.

Signal model (accelerometer in g on ax, ay, az; gyroscope in dps on gx, gy, gz):

- Shaft rotation phase phi(t) = integral of 2*pi*f(t): f = shaft_hz * speed factor (set by the
  schedule) * slow wander (two slow sinusoids). Radial axes (ax, ay) see harmonics k*phi 90 degrees
  apart, the axial axis (az) a weaker 1x/2x, plus gravity (the sensor lies flat, slightly tilted).
- Faults (severity s >= 0 scales them):
  `imbalance` 1x radial; `misalignment` 2x radial and 1x/2x axial; `looseness` harmonics 1x..8x,
  the 0.5x sub-harmonic and one-sided truncation; `bearing_outer` / `bearing_inner` impacts at
  BPFO / BPFI (inner: amplitude-modulated by shaft rotation) ringing the structural resonance.
- Gyroscope: rocking rates proportional to the radial/axial vibration.
- Field effects: white sensor noise, slow bias drift (random walk), gain change when the sensor is
  re-mounted (`schedule_gain`), speed changes (`schedule_speed`), saturation at the ranges
  (+-2 g, +-250 dps), MPU6050 LSB quantization, dropouts (a stuck I2C read: all axes 0).

Seeded and reproducible: every random stream draws per sample or per event, so the output does not
depend on how the stream is chunked. Pure numpy and stdlib.
"""

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.errors import DspError

AXES: Final = ("ax", "ay", "az", "gx", "gy", "gz")
UNITS: Final = ("g", "g", "g", "dps", "dps", "dps")
FAULTS: Final = ("normal", "imbalance", "misalignment", "looseness", "bearing_outer", "bearing_inner")
_BLOCK: Final = 1024  # samples generated at once (bounds the impact matrix)


@dataclass(frozen=True)
class MachineConfig:
    """The machine, the sensor and the field effects. Defaults: a 900 rpm machine sampled at 200 Hz."""

    sample_rate_hz: float = 200.0
    shaft_hz: float = 15.0
    speed_wander: float = 0.02  # relative amplitude of the slow speed wander
    harmonics_g: tuple[float, ...] = (0.05, 0.02, 0.01)  # healthy 1x, 2x, 3x radial amplitudes
    bpfo_ratio: float = 3.58  # outer-race defect frequency / shaft frequency
    bpfi_ratio: float = 5.42  # inner-race defect frequency / shaft frequency
    resonance_hz: float = 75.0
    resonance_damping: float = 0.05
    impact_g: float = 0.6  # bearing impact amplitude at severity 1
    gyro_dps_per_g: float = 40.0
    noise_g: float = 0.008
    noise_dps: float = 0.15
    drift_g_per_sqrt_s: float = 0.0005
    drift_dps_per_sqrt_s: float = 0.01
    tilt_g: tuple[float, float, float] = (0.02, -0.015, 0.9996)
    accel_range_g: float = 2.0
    gyro_range_dps: float = 250.0
    quantize_lsb: bool = True
    dropouts_per_s: float = 0.0
    dropout_s: float = 0.05

    def __post_init__(self) -> None:
        if self.sample_rate_hz <= 0 or self.shaft_hz <= 0:
            raise DspError("sample_rate_hz and shaft_hz must be > 0")
        if self.resonance_hz >= self.sample_rate_hz / 2:
            raise DspError(
                f"resonance_hz {self.resonance_hz} must be below Nyquist ({self.sample_rate_hz / 2})"
            )


@dataclass(frozen=True)
class SynthChunk:
    samples: NDArray[np.float32]  # [n, 6] in AXES order
    labels: NDArray[np.str_]  # [n] fault name per sample
    t0_s: float  # time of the first sample


@dataclass(order=True)
class _Change:
    at_s: float
    kind: str = field(compare=False)  # fault | speed | gain
    fault: str = field(compare=False, default="normal")
    value: float = field(compare=False, default=1.0)
    gains: tuple[float, ...] = field(compare=False, default=())


class VibrationSynth:
    """A continuous, seeded MPU6050 stream. `read(n)` returns the next `n` samples."""

    def __init__(self, config: MachineConfig | None = None, seed: int = 0) -> None:
        self.config = config or MachineConfig()
        seq = np.random.SeedSequence(seed)
        r_noise, r_drift, r_impact, r_drop, r_misc = (np.random.default_rng(s) for s in seq.spawn(5))
        self._noise_rng, self._drift_rng, self._impact_rng, self._drop_rng = (
            r_noise,
            r_drift,
            r_impact,
            r_drop,
        )
        self._wander_phase = r_misc.uniform(0, 2 * math.pi, size=2)
        self._harm_phase = r_misc.uniform(0, 2 * math.pi, size=9)
        self._index = 0
        self._phase = 0.0  # shaft phase, rad
        self._bearing_cycles = 0.0  # defect cycles since start (outer or inner, whichever is active)
        self._impacts: list[tuple[float, float]] = []  # (time s, amplitude g) still ringing
        self._bias = np.zeros(6)
        self._dropout_left = 0
        self.fault = "normal"
        self.severity = 0.0
        self.speed = 1.0
        self.gains = np.ones(6)
        self._changes: list[_Change] = []

    # -- control ---------------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        """Time of the next sample."""
        return self._index / self.config.sample_rate_hz

    def set_fault(self, fault: str, severity: float = 1.0) -> None:
        """Switch the fault now ("normal" clears it)."""
        self._check_fault(fault, severity)
        self.fault, self.severity = fault, (0.0 if fault == "normal" else severity)

    def schedule_fault(self, at_s: float, fault: str, severity: float = 1.0) -> None:
        """Switch to `fault` at stream time `at_s` seconds."""
        self._check_fault(fault, severity)
        self._add(_Change(at_s, "fault", fault=fault, value=severity))

    def schedule_speed(self, at_s: float, factor: float) -> None:
        """Run at `factor` x nominal shaft speed from `at_s`."""
        if factor <= 0:
            raise DspError(f"speed factor must be > 0, got {factor}")
        self._add(_Change(at_s, "speed", value=factor))

    def schedule_gain(self, at_s: float, gains: float | tuple[float, ...]) -> None:
        """Re-mount the sensor at `at_s`: multiply each axis by `gains` (one value or six)."""
        g = (float(gains),) * 6 if isinstance(gains, int | float) else tuple(float(v) for v in gains)
        if len(g) != 6:
            raise DspError(f"gains need one value or six, got {len(g)}")
        self._add(_Change(at_s, "gain", gains=g))

    def _check_fault(self, fault: str, severity: float) -> None:
        if fault not in FAULTS:
            raise DspError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if severity < 0:
            raise DspError(f"severity must be >= 0, got {severity}")

    def _add(self, change: _Change) -> None:
        self._changes.append(change)
        self._changes.sort()

    def _apply(self, change: _Change) -> None:
        if change.kind == "fault":
            self.set_fault(change.fault, change.value)
        elif change.kind == "speed":
            self.speed = change.value
        else:
            self.gains = np.asarray(change.gains)

    # -- generation ------------------------------------------------------------------------------
    def read(self, n: int) -> SynthChunk:
        """The next `n` samples (float32 [n, 6]) with the fault label of each sample."""
        if n < 0:
            raise DspError(f"cannot read {n} samples")
        t0 = self.time_s
        fs = self.config.sample_rate_hz
        parts: list[NDArray[np.float64]] = []
        labels: list[NDArray[np.str_]] = []
        left = n
        while left > 0:
            while self._changes and self._changes[0].at_s * fs <= self._index:
                self._apply(self._changes.pop(0))
            size = min(left, _BLOCK)
            if self._changes:
                until = math.ceil(self._changes[0].at_s * fs) - self._index
                size = max(1, min(size, until))
            parts.append(self._block(size))
            labels.append(np.full(size, self.fault))
            left -= size
        samples = np.concatenate(parts) if parts else np.empty((0, 6))
        label_arr = np.concatenate(labels) if labels else np.empty(0, dtype=np.str_)
        return SynthChunk(samples.astype(np.float32), label_arr, t0)

    def _block(self, n: int) -> NDArray[np.float64]:
        c = self.config
        fs = c.sample_rate_hz
        t = (self._index + np.arange(n)) / fs
        wander = 1 + c.speed_wander * (
            0.7 * np.sin(2 * np.pi * 0.013 * t + self._wander_phase[0])
            + 0.3 * np.sin(2 * np.pi * 0.071 * t + self._wander_phase[1])
        )
        freq = c.shaft_hz * self.speed * wander
        steps = 2 * np.pi * freq / fs
        phi = self._phase + np.concatenate([[0.0], np.cumsum(steps[:-1])])
        next_phase = float((phi[-1] + steps[-1]) % (2 * np.pi * 2))  # 4*pi keeps the 0.5x phase continuous
        s = self.severity
        radial = list(c.harmonics_g) + [0.0] * (8 - len(c.harmonics_g))
        axial = [0.3 * radial[0], 0.3 * radial[1]] + [0.0] * 6
        sub = 0.0
        if self.fault == "imbalance":
            radial[0] += 0.25 * s
        elif self.fault == "misalignment":
            radial[1] += 0.2 * s
            axial[0] += 0.1 * s
            axial[1] += 0.2 * s
        elif self.fault == "looseness":
            for k in range(8):
                radial[k] += 0.08 * s / (1 + 0.3 * k)
            sub = 0.06 * s
        ax = np.zeros(n)
        ay = np.zeros(n)
        az = np.zeros(n)
        for k in range(8):
            ph = (k + 1) * phi + self._harm_phase[k]
            if radial[k]:
                ax += radial[k] * np.cos(ph)
                ay += radial[k] * np.sin(ph)
            if axial[k]:
                az += axial[k] * np.cos(ph + 0.7)
        if sub:
            ax += sub * np.cos(0.5 * phi + self._harm_phase[8])
            ay += sub * np.sin(0.5 * phi + self._harm_phase[8])
        if self.fault == "looseness":  # rattling: motion is stopped on one side
            ax = np.minimum(ax, 0.6 * np.max(np.abs(ax)))
        ax += self._bearing(t, phi, freq)
        self._phase = next_phase
        gyro_x, gyro_y, gyro_z = c.gyro_dps_per_g * ay, -c.gyro_dps_per_g * ax, 0.5 * c.gyro_dps_per_g * az
        accel_noise = self._noise_rng.normal(0.0, 1.0, size=(n, 6))
        signal = np.stack([ax, ay, az, gyro_x, gyro_y, gyro_z], axis=1)
        signal[:, :3] += np.asarray(c.tilt_g)
        noise_scale = np.array([c.noise_g] * 3 + [c.noise_dps] * 3)
        drift_scale = np.array([c.drift_g_per_sqrt_s] * 3 + [c.drift_dps_per_sqrt_s] * 3) / math.sqrt(fs)
        walk = self._drift_rng.normal(0.0, 1.0, size=(n, 6)) * drift_scale
        bias = self._bias + np.cumsum(walk, axis=0)
        self._bias = bias[-1]
        out = (signal + bias) * self.gains + accel_noise * noise_scale
        out[:, :3] = np.clip(out[:, :3], -c.accel_range_g, c.accel_range_g)
        out[:, 3:] = np.clip(out[:, 3:], -c.gyro_range_dps, c.gyro_range_dps)
        if c.quantize_lsb:
            out[:, :3] = np.round(out[:, :3] * (32768 / c.accel_range_g)) / (32768 / c.accel_range_g)
            out[:, 3:] = np.round(out[:, 3:] * (32768 / c.gyro_range_dps)) / (32768 / c.gyro_range_dps)
        self._dropouts(out)
        self._index += n
        return np.asarray(out, dtype=np.float64)

    def _bearing(
        self, t: NDArray[np.float64], phi: NDArray[np.float64], freq: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        c = self.config
        fs = c.sample_rate_hz
        active = self.fault in ("bearing_outer", "bearing_inner")
        ratio = c.bpfo_ratio if self.fault != "bearing_inner" else c.bpfi_ratio
        cycles = self._bearing_cycles + np.cumsum(freq * ratio / fs)
        crossings = np.nonzero(
            np.floor(cycles) > np.floor(np.concatenate([[self._bearing_cycles], cycles[:-1]]))
        )[0]
        self._bearing_cycles = float(cycles[-1])
        if active:
            for i in crossings:
                amp = c.impact_g * self.severity * self._impact_rng.uniform(0.7, 1.3)
                if self.fault == "bearing_inner":
                    amp *= 0.5 * (1 + math.cos(float(phi[i])))
                self._impacts.append((float(t[i]), amp))
        out = np.zeros_like(t)
        if not self._impacts:
            return out
        decay = 2 * np.pi * c.resonance_damping * c.resonance_hz
        wd = 2 * np.pi * c.resonance_hz * math.sqrt(1 - c.resonance_damping**2)
        times = np.array([i[0] for i in self._impacts])
        amps = np.array([i[1] for i in self._impacts])
        dt = t[None, :] - times[:, None]
        cutoff = 7 / decay  # rings are cut after 7 time constants (chunking-independent)
        ring = np.where((dt >= 0) & (dt < cutoff), np.exp(-decay * np.maximum(dt, 0)) * np.sin(wd * dt), 0.0)
        out = (amps[:, None] * ring).sum(axis=0)
        horizon = t[-1] - cutoff
        self._impacts = [i for i in self._impacts if i[0] > horizon]
        return np.asarray(out, dtype=np.float64)

    def _dropouts(self, out: NDArray[np.float64]) -> None:
        c = self.config
        n = out.shape[0]
        starts = np.asarray(self._drop_rng.random(n) < c.dropouts_per_s / c.sample_rate_hz, dtype=bool)
        length = max(1, round(c.dropout_s * c.sample_rate_hz))
        for i in range(n):
            if self._dropout_left == 0 and starts[i]:
                self._dropout_left = length
            if self._dropout_left > 0:
                out[i] = 0.0
                self._dropout_left -= 1
