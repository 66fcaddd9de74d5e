"""The fan-speeds data set and its model for `bench field-real` (not a benchmark: leading underscore).

The data: `$EDGEFLEET_SHARED/datasets/fan-speeds/fan_speeds_float32.npz` (default `../shared` beside
the repository), keys `w{C}_s{PPP}`: weight configuration C (1, 2, 3) at speed PPP% (20..100, steps
of 5), 3,000 samples x 3 axes in g. It is read where it is, never copied.

The model: the model factory's `train` (int8 autoencoder, `configs/fan-speeds.yaml`) on the normal
configuration at the training speeds, with in-memory splits, cached under
`.edgefleet/bench-models/fan-speeds/` (one directory per normal configuration and config digest).
"""

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgefleet import dsp
from edgefleet.ml import load_config
from edgefleet.ml.config import TrainConfig
from edgefleet.ml.datasets import DataStats, Splits

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/fan-speeds.yaml"
DATA_FILE = "datasets/fan-speeds/fan_speeds_float32.npz"
SPEEDS = tuple(range(20, 101, 5))
CONFIGURATIONS = (1, 2, 3)
NAMES = {1: "normal", 2: "perpendicular", 3: "opposite"}  # the data set's own names
DEFAULT_TRAIN_SPEEDS = tuple(range(20, 101, 10))
SPLITS_SCHEME = 1  # bump when `splits` changes, so cached models are rebuilt


class FanSpeedsError(RuntimeError):
    """The data set is missing or an option does not make sense for it."""


def shared_dir() -> Path:
    """`EDGEFLEET_SHARED`, else `../shared` beside the repository (as the tests find it)."""
    return Path(os.environ.get("EDGEFLEET_SHARED", REPO.parent / "shared"))


def data_path(options: Mapping[str, str]) -> Path:
    return Path(options["data"]) if options.get("data") else shared_dir() / DATA_FILE


def key(configuration: int, speed: int) -> str:
    return f"w{configuration}_s{speed:03d}"


def parse_speeds(text: str) -> tuple[int, ...]:
    """`20,30,40` or `20-50` (every 5% from 20 to 50) -> sorted speeds of the data set."""
    speeds: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, sep, hi = part.partition("-")
        try:
            picked = [s for s in SPEEDS if int(lo) <= s <= int(hi)] if sep else [int(part)]
        except ValueError as err:
            raise FanSpeedsError(f"cannot read speeds {text!r}: use e.g. 20,30,40 or 20-50") from err
        unknown = [s for s in picked if s not in SPEEDS]
        if unknown or not picked:
            raise FanSpeedsError(f"speeds {part!r}: the data set has {SPEEDS[0]}..{SPEEDS[-1]}% in 5% steps")
        speeds.update(picked)
    if not speeds:
        raise FanSpeedsError(f"no speeds in {text!r}")
    return tuple(sorted(speeds))


def load_recordings(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FanSpeedsError(f"no fan-speeds data set at {path} (set EDGEFLEET_SHARED, or pass --data PATH)")
    try:
        return dsp.read_npz(path, n_axes=3)
    except dsp.RecordingError as err:
        raise FanSpeedsError(str(err)) from err


def frame(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(n, A) samples -> (B, window, A) float64 windows (a copy, in time order)."""
    return np.asarray(dsp.frame(np.asarray(samples, dtype=np.float64), window, hop), dtype=np.float64).copy()


def train_config(normal: int, train_speeds: Sequence[int], epochs: int | None = None) -> TrainConfig:
    """`configs/fan-speeds.yaml` with `normal` at `train_speeds` as the normal recordings."""
    base, _ = load_config(CONFIG)
    faults = [c for c in CONFIGURATIONS if c != normal]
    data = base.data.model_copy(
        update={
            "normal": [key(normal, s) for s in train_speeds],
            "anomaly": [key(c, s) for c in faults for s in train_speeds if s >= 50],
        }
    )
    update: dict[str, object] = {"data": data, "model_id": f"fan-speeds-w{normal}-ae"}
    if epochs is not None:
        update["training"] = base.training.model_copy(update={"epochs": epochs})
    return base.model_copy(update=update)


def splits(recordings: Mapping[str, np.ndarray], config: TrainConfig, sha256: str) -> Splits:
    """The factory's time split of each normal recording (train, calibration, test), in memory.

    Training windows are ordered by their position in time within their recording (not recording
    after recording), so the last rows that drive early stopping come from every training speed.
    """
    d = config.data
    train, calibration, test, position = [], [], [], []
    per_label: dict[str, int] = {}
    for name in d.normal:
        x = recordings[name]
        a = round(len(x) * d.split.train)
        b = round(len(x) * (d.split.train + d.split.calibration))
        parts = [frame(x[s:e], d.window, d.hop) for s, e in ((0, a), (a, b), (b, len(x)))]
        train.append(parts[0])
        position.append(np.arange(len(parts[0])) / max(1, len(parts[0])))
        calibration.append(parts[1])
        test.append(parts[2])
        per_label[name] = sum(len(p) for p in parts)
    order = np.argsort(np.concatenate(position), kind="stable")
    anomaly = [frame(recordings[name], d.window, d.test_hop or d.hop) for name in d.anomaly or []]
    labels = [name for name, w in zip(d.anomaly or [], anomaly, strict=True) for _ in range(len(w))]
    per_label.update({name: len(w) for name, w in zip(d.anomaly or [], anomaly, strict=True)})
    empty = np.zeros((0, d.window, len(d.axes)))
    stats = DataStats(windows=sum(per_label.values()), per_label=per_label, sha256=sha256)
    return Splits(
        np.concatenate(train)[order],
        np.concatenate(calibration),
        np.concatenate(test),
        np.concatenate(anomaly) if anomaly else empty,
        np.asarray(labels, dtype=np.str_),
        stats,
    )


def _digest(config: TrainConfig) -> str:
    text = json.dumps({"config": config.model_dump(mode="json"), "splits": SPLITS_SCHEME}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Progress:
    """The factory's progress callback, logged (stderr) at each stage and every 10% of training."""

    def __init__(self) -> None:
        self.last: tuple[str, int] = ("", -1)

    def __call__(self, stage: str, fraction: float) -> None:
        tenth = int(fraction * 10)
        if (stage, tenth) != self.last and (stage == "train" or fraction >= 1.0):
            self.last = (stage, tenth)
            log.info("training the fan-speeds model: %s %d%%", stage, tenth * 10)


def bench_model(
    options: Mapping[str, str],
    normal: int,
    train_speeds: Sequence[int],
    recordings: Mapping[str, np.ndarray],
) -> tuple[Path, str, dict[str, object]]:
    """(model directory, where it came from, the training report's headline figures)."""
    if options.get("model"):
        directory = Path(options["model"])
        return directory, "given (--model)", _report_figures(directory)
    epochs = int(options["epochs"]) if options.get("epochs") else None
    config = train_config(normal, train_speeds, epochs)
    root = Path(options.get("cache", str(Path(".edgefleet/bench-models")))) / "fan-speeds"
    directory = root / f"w{normal}-{_digest(config)}"
    if (directory / "model_card.json").exists():
        return directory, f"cached model ({directory})", _report_figures(directory)
    import _edge_models  # the sibling helper: TensorFlow's converter writes to stdout
    from edgefleet.ml.pipeline import train

    log.warning(
        "training the fan-speeds model (configuration %d at %s%%) into %s; cached for later runs",
        normal,
        ",".join(str(s) for s in train_speeds),
        directory,
    )
    path = data_path(options)
    work = root / f".{directory.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    with _edge_models.stdout_to_stderr():
        result = train(
            config,
            work,
            splits=splits(recordings, config, _file_sha256(path)),
            data_source=f"{path} ({', '.join(config.data.normal)})",
            progress=_Progress(),
        )
    try:
        work.rename(directory)
    except OSError:  # another run cached the same model meanwhile: keep theirs
        shutil.rmtree(work, ignore_errors=True)
    log.info("trained in %.1f s", result.report["train_seconds"])
    return directory, f"trained now ({directory})", _report_figures(directory)


def _report_figures(directory: Path) -> dict[str, object]:
    path = directory / "report.json"
    if not path.exists():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    return {
        "train_seconds": report.get("train_seconds"),
        "train_windows": report.get("data", {}).get("train_windows"),
        "epochs_run": report.get("model", {}).get("epochs_run"),
        "features": len(report.get("features", {}).get("names", [])),
        "layers": report.get("model", {}).get("layers"),
        "flash_bytes": report.get("model", {}).get("flash_bytes"),
        "arena_bytes": report.get("model", {}).get("arena_bytes"),
        "card_threshold": report.get("threshold", {}).get("value"),
        "training_speeds_int8_auc": report.get("int8", {}).get("auc"),
        "training_speeds_kmeans_auc": report.get("baseline_kmeans", {}).get("auc"),
    }
