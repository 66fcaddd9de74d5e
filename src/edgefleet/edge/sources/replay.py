"""The `replay` source: a recording in any of the model factory's formats, played in order."""

from pathlib import Path

import numpy as np

from edgefleet.dsp import AXES, DspError, read_npz, read_table_csv, read_window_folder
from edgefleet.edge.errors import SourceError
from edgefleet.edge.sources.base import Chunk


class ReplaySource:
    """`.csv` table (format a), a folder of per-class window CSVs (format b), or `.npz` (format c)."""

    def __init__(
        self,
        path: Path,
        *,
        key: str | None = None,
        sample_rate_hz: float = 200.0,
        axes: tuple[str, ...] | None = None,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        axes = axes or tuple(AXES)
        try:
            if path.is_dir():
                ws = read_window_folder(path, n_axes=len(axes))
                samples = ws.windows.reshape(-1, ws.windows.shape[-1])
            elif path.suffix == ".npz":
                recordings = read_npz(path, keys=[key] if key else None)
                samples = np.concatenate(list(recordings.values()))
                axes = (
                    tuple(f"ch{i}" for i in range(samples.shape[1]))
                    if samples.shape[1] != len(axes)
                    else axes
                )
            else:
                samples = read_table_csv(path, axes).samples
        except DspError as err:
            raise SourceError(str(err)) from err
        except OSError as err:
            raise SourceError(f"cannot read {path}: {err.strerror}") from err
        self.axes = axes
        self.samples = np.asarray(samples, dtype=np.float64)
        self._pos = 0

    def read(self, max_samples: int) -> Chunk | None:
        if self._pos >= len(self.samples):
            return None
        part = self.samples[self._pos : self._pos + max_samples]
        t = (self._pos + np.arange(len(part))) / self.sample_rate_hz
        self._pos += len(part)
        return Chunk(part, t)

    def close(self) -> None:
        return None
