"""The sensor source interface and the `kind:argument` spec parser."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgefleet.edge.errors import SourceError


@dataclass(frozen=True)
class Chunk:
    """Samples (n, A) in the sensor's units, with per-sample timestamps (n,) in seconds.

    A NaN timestamp marks a reading that could not be parsed (its samples are NaN too).
    """

    samples: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.samples.shape[0])


class SampleSource(Protocol):
    axes: tuple[str, ...]
    sample_rate_hz: float

    def read(self, max_samples: int) -> Chunk | None:
        """Up to `max_samples` samples; an empty chunk when none are ready; None at the end."""
        ...

    def close(self) -> None: ...


def open_source(
    spec: str,
    *,
    sample_rate_hz: float = 200.0,
    seed: int = 0,
    faults: str | None = None,
    axes: tuple[str, ...] | None = None,
) -> SampleSource:
    """`synthetic[:SEED]`, `replay:PATH[#KEY]` or `serial:PORT[@BAUD]`."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        from edgefleet.edge.sources.synthetic import SyntheticSource

        return SyntheticSource(seed=int(arg) if arg else seed, faults=faults, sample_rate_hz=sample_rate_hz)
    if kind == "replay":
        from edgefleet.edge.sources.replay import ReplaySource

        path, _, key = arg.partition("#")
        return ReplaySource(Path(path), key=key or None, sample_rate_hz=sample_rate_hz, axes=axes)
    if kind == "serial":
        from edgefleet.edge.sources.serial import SerialSource

        port, _, baud = arg.partition("@")
        return SerialSource(
            port,
            baudrate=int(baud) if baud else 115200,
            sample_rate_hz=sample_rate_hz,
            axes=axes or ("ax", "ay", "az", "gx", "gy", "gz"),
        )
    raise SourceError(
        f"unknown source {spec!r}: use synthetic[:SEED], replay:PATH[#KEY] or serial:PORT[@BAUD]"
    )
