"""Recording labelled windows from a device that streams CSV lines over a serial port (pyserial).

The device prints one sample per line: `ax,ay,az,gx,gy,gz` (a header line or any line that does
not parse is skipped and counted). The result is appended to a format-(a) CSV.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.errors import MlError

log = logging.getLogger(__name__)


class CollectError(MlError):
    """The serial device could not be opened or stopped sending."""


class LineSource(Protocol):
    def readline(self) -> bytes: ...


@dataclass
class Collected:
    samples: NDArray[np.float64]  # [n, axes]
    bad_lines: int
    first_bad: str | None


def open_serial(port: str, baud: int = 115200, timeout_s: float = 1.0) -> Any:
    import serial

    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout_s)
    except (serial.SerialException, OSError, ValueError) as err:
        raise CollectError(f"cannot open serial port {port}: {err}") from err


def parse_line(line: str, n_axes: int) -> list[float] | None:
    fields = line.strip().split(",")
    if len(fields) != n_axes:
        return None
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return None
    return values if all(np.isfinite(values)) else None


def collect(
    source: LineSource,
    n_samples: int,
    n_axes: int,
    *,
    idle_timeout_s: float = 5.0,
    on_sample: Callable[[int], None] | None = None,
) -> Collected:
    """Read `n_samples` valid samples; fails if nothing valid arrives for `idle_timeout_s`."""
    rows: list[list[float]] = []
    bad = 0
    first_bad: str | None = None
    last = time.monotonic()
    while len(rows) < n_samples:
        raw = source.readline()
        text = raw.decode("utf-8", errors="replace")
        if raw and text.strip():
            values = parse_line(text, n_axes)
            if values is not None:
                rows.append(values)
                last = time.monotonic()
                if on_sample is not None:
                    on_sample(len(rows))
                continue
            bad += 1
            first_bad = first_bad or text.strip()[:80]
        if time.monotonic() - last > idle_timeout_s:
            raise CollectError(
                f"no valid sample for {idle_timeout_s:g} s after {len(rows)} of {n_samples} "
                f"({bad} unparseable lines{', first: ' + repr(first_bad) if first_bad else ''})"
            )
    if bad:
        log.warning("skipped %d unparseable lines (first: %r)", bad, first_bad)
    return Collected(np.asarray(rows, dtype=np.float64).reshape(-1, n_axes), bad, first_bad)


def append_table(
    path: Path, samples: NDArray[np.float64], label: str, axes: Sequence[str], label_column: str = "label"
) -> None:
    """Append rows to a format-(a) CSV, writing the header if the file is new."""
    new = not path.exists() or path.stat().st_size == 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", newline="") as handle:
            if new:
                handle.write(",".join([*axes, label_column]) + "\n")
            for row in samples.tolist():
                handle.write(",".join(f"{v:.6g}" for v in row) + f",{label}\n")
    except OSError as err:
        raise CollectError(f"cannot write {path}: {err.strerror}") from err
