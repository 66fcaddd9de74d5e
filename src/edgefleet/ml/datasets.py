"""From recordings (formats a/b/c) to time-split windows: train / calibration / test.

Each normal recording (a contiguous run of one label in a CSV table, one npz key, or one class
folder of window files in name order) is split in time order: the first `split.train` of its
samples for training, the next `split.calibration` for threshold calibration, the rest for test,
and only then cut into windows, so test windows never overlap training windows. Anomalous
recordings all go to test. Windows with a dropout (an all-zero sample on every axis, multi-axis
data only) are rejected and counted; incomplete tails are counted too.
"""

import hashlib
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp import RecordingError, frame, read_npz, read_table_csv, read_window_folder, window_count
from edgefleet.ml.config import DataConfig
from edgefleet.ml.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recording:
    source: str  # file, or file:key / file@rows
    label: str
    samples: NDArray[np.float64]  # [n, axes]


@dataclass
class DataStats:
    windows: int = 0
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    tail_samples_dropped: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    sha256: str = ""


@dataclass
class Splits:
    train: NDArray[np.float64]  # [n, window, axes], time order
    calibration: NDArray[np.float64]
    test_normal: NDArray[np.float64]
    test_anomaly: NDArray[np.float64]
    test_anomaly_labels: NDArray[np.str_]
    stats: DataStats


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _runs(labels: NDArray[np.str_]) -> list[tuple[int, int]]:
    """[start, end) of each run of equal labels."""
    if labels.size == 0:
        return []
    change = np.nonzero(labels[1:] != labels[:-1])[0] + 1
    edges = [0, *change.tolist(), labels.size]
    return list(itertools.pairwise(edges))


def load_recordings(config: DataConfig, path: Path) -> list[Recording]:
    """Formats (a) and (c) as labelled recordings (format (b) is handled by `load_splits`)."""
    n_axes = len(config.axes)
    try:
        if config.format == "csv_table":
            table = read_table_csv(path, config.axes, config.label_column)
            return [
                Recording(f"{path}@rows{a + 2}-{b + 1}", str(table.labels[a]), table.samples[a:b])
                for a, b in _runs(table.labels)
            ]
        if config.format == "npz":
            wanted = None if config.anomaly is None else [*config.normal, *config.anomaly]
            arrays = read_npz(path, wanted, n_axes=n_axes)
            missing = [k for k in config.normal if k not in arrays]
            if missing:
                raise DatasetError(f"{path}: no normal recording {', '.join(missing)}")
            return [Recording(f"{path}:{key}", key, data) for key, data in arrays.items()]
    except RecordingError as err:
        raise DatasetError(str(err)) from err
    raise DatasetError(f"format {config.format!r} has no recordings")


def _cut(samples: NDArray[np.float64], window: int, hop: int, stats: DataStats) -> NDArray[np.float64]:
    count = window_count(samples.shape[0], window, hop)
    used = 0 if count == 0 else (count - 1) * hop + window
    stats.tail_samples_dropped += samples.shape[0] - used
    return np.asarray(frame(samples, window, hop), dtype=np.float64)


def _reject(windows: NDArray[np.float64], config: DataConfig, stats: DataStats) -> NDArray[np.float64]:
    if not config.reject_dropouts or windows.shape[0] == 0 or windows.shape[2] < 2:
        return windows
    dropout = np.all(windows == 0.0, axis=2).any(axis=1)
    if dropout.any():
        stats.rejected += int(dropout.sum())
        stats.rejected_reasons["dropout"] = stats.rejected_reasons.get("dropout", 0) + int(dropout.sum())
    return np.asarray(windows[~dropout], dtype=np.float64)


def _stack(parts: list[NDArray[np.float64]], config: DataConfig) -> NDArray[np.float64]:
    if not parts:
        return np.empty((0, config.window, len(config.axes)))
    return np.concatenate(parts)


def _split_index(n: int, config: DataConfig) -> tuple[int, int]:
    a = round(n * config.split.train)
    b = round(n * (config.split.train + config.split.calibration))
    return a, b


def load_splits(config: DataConfig, path: Path) -> Splits:
    """Load, split by time and window the dataset at `path` (already expanded)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    stats = DataStats(sha256=_sha256(path))
    normal = set(config.normal)
    train: list[NDArray[np.float64]] = []
    calib: list[NDArray[np.float64]] = []
    test_n: list[NDArray[np.float64]] = []
    test_a: list[NDArray[np.float64]] = []
    test_a_labels: list[str] = []
    per_label: Counter[str] = Counter()
    test_hop = config.test_hop or config.hop

    def is_anomaly(label: str) -> bool:
        return label not in normal and (config.anomaly is None or label in config.anomaly)

    if config.format == "window_folder":
        try:
            ws = read_window_folder(path, len(config.axes), config.window)
        except RecordingError as err:
            raise DatasetError(str(err)) from err
        for label in sorted(set(ws.labels.tolist())):
            windows = _reject(ws.windows[ws.labels == label], config, stats)
            per_label[label] += windows.shape[0]
            if label in normal:
                a, b = _split_index(windows.shape[0], config)
                train.append(windows[:a])
                calib.append(windows[a:b])
                test_n.append(windows[b:])
            elif is_anomaly(label):
                test_a.append(windows)
                test_a_labels += [label] * windows.shape[0]
    else:
        recordings = load_recordings(config, path)
        longest = max(r.samples.shape[0] for r in recordings)
        if longest < config.window:
            raise DatasetError(
                f"{path}: the longest recording has {longest} samples, "
                f"shorter than one window of {config.window}"
            )
        for rec in recordings:
            if rec.label in normal:
                a, b = _split_index(rec.samples.shape[0], config)
                if a < config.window:
                    raise DatasetError(
                        f"{rec.source}: the training part of normal recording {rec.label!r} "
                        f"has {a} samples, shorter than one window of {config.window}"
                    )
                parts = [
                    _reject(_cut(rec.samples[s:e], config.window, config.hop, stats), config, stats)
                    for s, e in ((0, a), (a, b), (b, rec.samples.shape[0]))
                ]
                train.append(parts[0])
                calib.append(parts[1])
                test_n.append(parts[2])
                per_label[rec.label] += sum(p.shape[0] for p in parts)
            elif is_anomaly(rec.label):
                windows = _reject(_cut(rec.samples, config.window, test_hop, stats), config, stats)
                test_a.append(windows)
                test_a_labels += [rec.label] * windows.shape[0]
                per_label[rec.label] += windows.shape[0]
            else:
                log.info(
                    "ignoring %s (label %r is neither normal nor a listed anomaly)", rec.source, rec.label
                )
    splits = Splits(
        _stack(train, config),
        _stack(calib, config),
        _stack(test_n, config),
        _stack(test_a, config),
        np.asarray(test_a_labels, dtype=np.str_),
        stats,
    )
    stats.per_label = dict(per_label)
    stats.windows = sum(per_label.values())
    for name, arr in (
        ("train", splits.train),
        ("calibration", splits.calibration),
        ("test normal", splits.test_normal),
        ("test anomaly", splits.test_anomaly),
    ):
        if arr.shape[0] == 0:
            raise DatasetError(
                f"{path}: no {name} windows (labels found: "
                f"{', '.join(sorted(per_label)) or 'none'}; normal = {', '.join(config.normal)})"
            )
    log.info(
        "dataset %s: %d windows (%d rejected, %d tail samples dropped)",
        path,
        stats.windows,
        stats.rejected,
        stats.tail_samples_dropped,
    )
    return splits
