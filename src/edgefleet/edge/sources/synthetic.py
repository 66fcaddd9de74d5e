"""The `synthetic` source: dsp's physics-based MPU6050 generator, with faults switched on at given times."""

import numpy as np

from edgefleet.dsp import AXES, FAULTS, MachineConfig, VibrationSynth
from edgefleet.edge.errors import SourceError
from edgefleet.edge.sources.base import Chunk


def parse_faults(spec: str | None) -> list[tuple[float, str, float]]:
    """`FAULT@SECONDS[xSEVERITY],...`, e.g. `imbalance@30,bearing_outer@120x0.5,normal@200`."""
    out: list[tuple[float, str, float]] = []
    for item in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, _, rest = item.partition("@")
        at, _, severity = rest.partition("x")
        if name not in FAULTS and name not in ("speed", "gain"):
            raise SourceError(f"unknown fault {name!r} in {spec!r} (known: {', '.join(FAULTS)}, speed, gain)")
        try:
            out.append((float(at or 0), name, float(severity) if severity else 1.0))
        except ValueError as err:
            raise SourceError(f"bad fault item {item!r}: use FAULT@SECONDS[xSEVERITY]") from err
    return out


class SyntheticSource:
    axes = tuple(AXES)

    def __init__(
        self,
        seed: int = 0,
        faults: str | None = None,
        sample_rate_hz: float = 200.0,
        machine: MachineConfig | None = None,
    ) -> None:
        self.machine = machine or MachineConfig(sample_rate_hz=sample_rate_hz)
        self.sample_rate_hz = self.machine.sample_rate_hz
        self.synth = VibrationSynth(self.machine, seed=seed)
        for at, name, value in parse_faults(faults):
            if name == "speed":
                self.synth.schedule_speed(at, value)
            elif name == "gain":
                self.synth.schedule_gain(at, value)
            else:
                self.synth.schedule_fault(at, name, value)
        self._n = 0

    def read(self, max_samples: int) -> Chunk:
        chunk = self.synth.read(max_samples)
        t = (self._n + np.arange(max_samples)) / self.sample_rate_hz
        self._n += max_samples
        return Chunk(np.asarray(chunk.samples, dtype=np.float64), t)

    def close(self) -> None:
        return None
