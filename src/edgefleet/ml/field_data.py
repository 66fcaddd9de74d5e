"""Field windows (devices' sampled normal windows, `GET /api/v1/samples`) as a training set.

Samples are decoded (int16 x scale per axis), checked against the training config's sensor
(sample rate, axes, window length), and split per device in time order: each device's oldest
windows train, the next calibrate the threshold, its newest are held out for the comparison.
Within training, each device's latest `validation_fraction` are placed last, so the early-stopping
validation rows (the last ones, see `autoencoder.fit`) are every device's latest, not one device's.
"""

import base64
import binascii
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.window_codec import ENCODING, unpack_int16
from edgefleet.ml.config import DataConfig, SplitConfig
from edgefleet.ml.datasets import DataStats, Splits
from edgefleet.ml.errors import RetrainError

log = logging.getLogger(__name__)


@dataclass
class FieldWindows:
    """Decoded field windows, in time order per device."""

    windows: NDArray[np.float64]  # [n, window, axes]
    device_ids: list[str]
    ts: list[datetime]
    device_scores: list[float | None]
    model_versions: list[str | None]
    skipped: dict[str, int] = field(default_factory=dict)
    sha256: str = ""

    def __len__(self) -> int:
        return int(self.windows.shape[0])


@dataclass
class FieldSplits:
    train: NDArray[np.float64]
    calibration: NDArray[np.float64]
    test: NDArray[np.float64]
    test_devices: list[str]
    per_device: dict[str, dict[str, int]]


def _mismatch(item: Mapping[str, Any], data: DataConfig) -> str | None:
    if item.get("encoding") != ENCODING:
        return "encoding"
    if abs(float(item["sample_rate_hz"]) - data.sample_rate_hz) > 1e-6 * data.sample_rate_hz:
        return "sample_rate"
    if list(item["axes"]) != list(data.axes):
        return "axes"
    if int(item["length"]) != data.window:
        return "window_length"
    return None


def decode_samples(items: Iterable[Mapping[str, Any]], data: DataConfig) -> FieldWindows:
    """Decode `WindowSamplePublic` dicts; samples that do not fit `data` are skipped and counted."""
    skipped: Counter[str] = Counter()
    digest = hashlib.sha256()
    rows: list[tuple[str, datetime, int, NDArray[np.float64], float | None, str | None]] = []
    for item in items:
        try:
            reason = _mismatch(item, data)
            if reason is not None:
                skipped[reason] += 1
                continue
            raw = base64.b64decode(item["data"], validate=True)
            window = unpack_int16(raw, [float(s) for s in item["scale"]], int(item["length"]))
            ts = datetime.fromisoformat(str(item["ts"]).replace("Z", "+00:00"))
        except (KeyError, TypeError, ValueError, binascii.Error):
            skipped["malformed"] += 1
            continue
        if not np.all(np.isfinite(window)):
            skipped["malformed"] += 1
            continue
        digest.update(raw)
        score = item.get("score")
        rows.append(
            (str(item["device_id"]), ts, int(item.get("seq", 0)), window, score, item.get("model_version"))
        )
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    windows = np.stack([r[3] for r in rows]) if rows else np.empty((0, data.window, len(data.axes)))
    if skipped:
        log.info("skipped field samples: %s", dict(skipped))
    return FieldWindows(
        windows=windows,
        device_ids=[r[0] for r in rows],
        ts=[r[1] for r in rows],
        device_scores=[float(r[4]) if r[4] is not None else None for r in rows],
        model_versions=[r[5] for r in rows],
        skipped=dict(skipped),
        sha256=digest.hexdigest(),
    )


def split_by_device_and_time(
    field_windows: FieldWindows, split: SplitConfig, validation_fraction: float, min_windows: int
) -> FieldSplits:
    """Per device, oldest to newest: train | calibration | test (the config's fractions)."""
    n = len(field_windows)
    if n < min_windows:
        skipped = sum(field_windows.skipped.values())
        why = f" ({skipped} more did not fit the config: {field_windows.skipped})" if skipped else ""
        raise RetrainError(
            f"only {n} usable field windows{why}; retraining needs at least {min_windows}. Enable "
            "`samples` in more devices' configs (or raise `samples.max_per_hour`) and try again later."
        )
    by_device: dict[str, list[int]] = {}
    for i, device_id in enumerate(field_windows.device_ids):
        by_device.setdefault(device_id, []).append(i)  # already in time order per device
    fit: list[int] = []
    val: list[int] = []
    calib: list[int] = []
    test: list[int] = []
    per_device: dict[str, dict[str, int]] = {}
    for device_id, index in sorted(by_device.items()):
        a = round(len(index) * split.train)
        b = round(len(index) * (split.train + split.calibration))
        train_part = index[:a]
        n_val = round(len(train_part) * validation_fraction)
        fit += train_part[: len(train_part) - n_val]
        val += train_part[len(train_part) - n_val :]
        calib += index[a:b]
        test += index[b:]
        per_device[device_id] = {"train": a, "calibration": b - a, "test": len(index) - b}
    for name, part in (("training", fit + val), ("calibration", calib), ("held-out test", test)):
        if not part:
            raise RetrainError(f"no {name} windows after splitting {n} field windows by device and time")
    w = field_windows.windows
    return FieldSplits(
        train=w[fit + val],
        calibration=w[calib],
        test=w[test],
        test_devices=[field_windows.device_ids[i] for i in test],
        per_device=per_device,
    )


def to_splits(
    parts: FieldSplits,
    field_windows: FieldWindows,
    anomaly: NDArray[np.float64],
    anomaly_labels: NDArray[np.str_],
) -> Splits:
    """The pipeline's `Splits`: field windows for train/calibration/test, the dataset's faults (if any)."""
    stats = DataStats(
        windows=len(field_windows),
        rejected=sum(field_windows.skipped.values()),
        rejected_reasons=dict(field_windows.skipped),
        per_label={"field_normal": len(field_windows), **dict(Counter(anomaly_labels.tolist()))},
        sha256=field_windows.sha256,
    )
    return Splits(parts.train, parts.calibration, parts.test, anomaly, anomaly_labels, stats)
