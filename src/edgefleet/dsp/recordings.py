"""Readers of the three recording formats (pure numpy + stdlib); bad input names file and line.

- (a) `read_table_csv`: one CSV table with a header, sensor columns and a label column
  (e.g. `ax,ay,az,gx,gy,gz,label`, as the ESP32+MPU6050 collection firmware logs it).
- (b) `read_window_folder`: a folder per class, one window per CSV file, no header, one column per
  axis (as Edge Impulse exports).
- (c) `read_npz`: `.npz` arrays keyed by recording (1-D for one axis, or [n, axes]).
"""

import csv
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.errors import RecordingError


@dataclass(frozen=True)
class Table:
    """Format (a): samples in file order and the label of each sample."""

    samples: NDArray[np.float64]  # [n, axes]
    labels: NDArray[np.str_]  # [n]
    path: Path


@dataclass(frozen=True)
class WindowSet:
    """Format (b): one window per file."""

    windows: NDArray[np.float64]  # [n, window, axes]
    labels: NDArray[np.str_]  # [n] (the class folder name)
    files: tuple[Path, ...]


def _parse_float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordingError(path, f"column {column!r}: {text.strip()!r} is not a number", line) from None
    if not math.isfinite(value):
        raise RecordingError(path, f"column {column!r}: {text.strip()!r} is not a finite number", line)
    return value


def read_table_csv(
    path: Path | str, axes: Sequence[str], label_column: str = "label", min_rows: int = 1
) -> Table:
    """Read format (a). Columns are matched by header name; other columns are ignored."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as err:
        raise RecordingError(path, f"cannot open: {err.strerror}") from err
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise RecordingError(path, "empty file (no header line)", 1)
        header = [h.strip() for h in header]
        missing = [c for c in (*axes, label_column) if c not in header]
        if missing:
            raise RecordingError(
                path, f"header lacks column(s) {', '.join(missing)}; found {', '.join(header)}", 1
            )
        index = [header.index(a) for a in axes]
        label_index = header.index(label_column)
        rows: list[list[float]] = []
        labels: list[str] = []
        for row in reader:
            line = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise RecordingError(
                    path, f"ragged row: {len(row)} fields, the header has {len(header)}", line
                )
            rows.append([_parse_float(row[i], path, line, header[i]) for i in index])
            label = row[label_index].strip()
            if not label:
                raise RecordingError(path, f"empty {label_column!r}", line)
            labels.append(label)
    if len(rows) < min_rows:
        raise RecordingError(path, f"{len(rows)} data rows, fewer than the {min_rows} needed")
    samples = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(axes))
    return Table(samples, np.asarray(labels, dtype=np.str_), path)


def _read_window_file(path: Path, n_axes: int) -> NDArray[np.float64]:
    rows: list[list[float]] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for row in reader:
                if not row or all(not f.strip() for f in row):
                    continue
                if len(row) != n_axes:
                    raise RecordingError(
                        path, f"{len(row)} values, expected {n_axes} (one per axis)", reader.line_num
                    )
                rows.append([_parse_float(v, path, reader.line_num, f"#{i + 1}") for i, v in enumerate(row)])
    except OSError as err:
        raise RecordingError(path, f"cannot read: {err.strerror}") from err
    if not rows:
        raise RecordingError(path, "no samples")
    return np.asarray(rows, dtype=np.float64)


def read_window_folder(root: Path | str, n_axes: int, window: int | None = None) -> WindowSet:
    """Read format (b): `root/<class>/*.csv`, sorted by name. All windows must have the same length
    (`window` if given, else that of the first file)."""
    root = Path(root)
    if not root.is_dir():
        raise RecordingError(root, "not a directory")
    windows: list[NDArray[np.float64]] = []
    labels: list[str] = []
    files: list[Path] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.glob("*.csv")):
            data = _read_window_file(file, n_axes)
            expected = window if window is not None else (windows[0].shape[0] if windows else data.shape[0])
            if data.shape[0] != expected:
                raise RecordingError(file, f"{data.shape[0]} samples, expected a window of {expected}")
            windows.append(data)
            labels.append(class_dir.name)
            files.append(file)
    if not windows:
        raise RecordingError(root, "no <class>/*.csv window files found")
    return WindowSet(np.stack(windows), np.asarray(labels, dtype=np.str_), tuple(files))


def read_npz(
    path: Path | str, keys: Sequence[str] | None = None, n_axes: int | None = None, min_samples: int = 1
) -> dict[str, NDArray[np.float64]]:
    """Read format (c): `{recording: samples[n, axes]}` (1-D arrays become [n, 1]).

    `keys` selects recordings (all if None); `n_axes` checks the axis count.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise RecordingError(path, f"cannot read as .npz: {err}") from err
    out: dict[str, NDArray[np.float64]] = {}
    with archive:
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise RecordingError(path, "not an .npz archive (a single .npy array?)")
        wanted = list(keys) if keys is not None else sorted(archive.files)
        for key in wanted:
            if key not in archive.files:
                raise RecordingError(path, f"no recording {key!r}; found {', '.join(sorted(archive.files))}")
            data = np.asarray(archive[key], dtype=np.float64)
            if data.ndim == 1:
                data = data[:, None]
            if data.ndim != 2:
                raise RecordingError(
                    path, f"recording {key!r} has shape {data.shape}, expected [n] or [n, axes]"
                )
            if n_axes is not None and data.shape[1] != n_axes:
                raise RecordingError(path, f"recording {key!r} has {data.shape[1]} axes, expected {n_axes}")
            bad = np.nonzero(~np.isfinite(data).all(axis=1))[0]
            if bad.size:
                raise RecordingError(path, f"recording {key!r}: non-finite value at sample {int(bad[0])}")
            if data.shape[0] < min_samples:
                raise RecordingError(
                    path,
                    f"recording {key!r} has {data.shape[0]} samples, fewer than the {min_samples} needed",
                )
            out[key] = data
    return out


def write_table_csv(
    path: Path | str,
    samples: NDArray[np.floating],
    labels: Sequence[str] | NDArray[np.str_],
    axes: Sequence[str],
    *,
    label_column: str = "label",
    decimals: int = 6,
) -> None:
    """Write format (a) (the inverse of `read_table_csv`)."""
    path = Path(path)
    if samples.ndim != 2 or samples.shape[1] != len(axes) or len(labels) != samples.shape[0]:
        raise RecordingError(
            path, f"samples {samples.shape} do not match {len(axes)} axes and {len(labels)} labels"
        )
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(",".join([*axes, label_column]) + "\n")
        fmt = f"{{:.{decimals}g}}"
        for row, label in zip(samples.tolist(), labels, strict=True):
            handle.write(",".join([*(fmt.format(v) for v in row), str(label)]) + "\n")
