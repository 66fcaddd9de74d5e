"""Retraining from the field: devices' sampled normal windows -> a candidate model -> a comparison.

`retrain` downloads the windows (`GET /api/v1/samples`), splits them per device in time order
(`ml.field_data`), trains a candidate with the usual pipeline (`pipeline.train` on in-memory splits;
the config's dataset contributes only its fault windows, when it can be loaded), and compares the
candidate with the deployed model on the held-out field windows: false alarms at each model's own
card threshold, score statistics against each card, and fault recall when fault windows exist.
The report is `retrain_report.json` in the candidate's directory.
"""

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.contracts import ContractError, ModelCard, load_model_card
from edgefleet.dsp import FeatureConfig, extract, standardize
from edgefleet.ml.config import DistillationConfig, PruningConfig, TrainConfig
from edgefleet.ml.datasets import load_splits
from edgefleet.ml.errors import MlError, RetrainError
from edgefleet.ml.evaluate import score_stats
from edgefleet.ml.field_data import FieldWindows, decode_samples, split_by_device_and_time, to_splits
from edgefleet.ml.fleet_client import FleetClient
from edgefleet.ml.pipeline import Progress, TrainResult, int8_scores, resolve_data, train
from edgefleet.ml.runtime import TflmModel

log = logging.getLogger(__name__)
REPORT_FILE = "retrain_report.json"
MAX_VERSION_CHARS = 32


@dataclass(frozen=True)
class RetrainOptions:
    server: str
    api_key: str
    model_id: str
    out: Path
    since: datetime | None = None
    deployed_dir: Path | None = None
    version: str | None = None
    min_windows: int = 200
    max_samples: int = 20_000
    device_kind: str = "vibration"


@dataclass(frozen=True)
class DeployedModel:
    model_id: str
    version: str
    card: ModelCard
    tflite: bytes | None
    source: str


@dataclass
class RetrainResult:
    report: dict[str, Any]
    candidate_dir: Path
    training: TrainResult


def load_model_dir(directory: Path) -> DeployedModel:
    """A model directory of the model factory (`model.tflite` + `model_card.json`)."""
    try:
        card = load_model_card(directory / "model_card.json")
        tflite = (directory / "model.tflite").read_bytes()
    except ContractError as err:
        raise RetrainError(f"--deployed {directory}: {err}") from err
    except OSError as err:
        raise RetrainError(f"--deployed {directory}: cannot read model.tflite: {err.strerror}") from err
    return DeployedModel(card.model_id, card.model_version, card, tflite, str(directory))


def next_version(version: str) -> str:
    """1.0.0 -> 1.0.1, 3 -> 4, v2-rc -> v2-rc.1 (the registry needs a new version)."""
    match = re.fullmatch(r"(.*?)(\d+)", version)
    bumped = f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{version}.1"
    if len(bumped) > MAX_VERSION_CHARS:
        raise RetrainError(f"cannot derive a new version from {version!r}; pass --version")
    return bumped


def incompatibility(card: ModelCard, config: TrainConfig) -> str | None:
    """Why the field windows of `config` cannot be scored by the model of `card` (None: they can)."""
    fs, sensor = card.feature_spec, card.sensor
    if fs is None or sensor is None or card.threshold is None:
        return "its card has no feature spec, sensor or threshold"
    if card.input.quantization is None or card.output.quantization is None:
        return "its card has no input/output quantization"
    data = config.data
    if fs.window != data.window or list(sensor.axes) != list(data.axes):
        return (
            f"it takes {fs.window}-sample windows of {sensor.axes}, "
            f"the field windows are {data.window} of {data.axes}"
        )
    if abs(fs.sample_rate_hz - data.sample_rate_hz) > 1e-6 * data.sample_rate_hz:
        return f"it was trained at {fs.sample_rate_hz} Hz, the field windows are at {data.sample_rate_hz} Hz"
    return None


def model_scores(card: ModelCard, tflite: bytes, windows: NDArray[np.float64]) -> NDArray[np.float32]:
    """The device's int8 score (TFLite Micro kernels) with the card's standardization."""
    fs, sensor = card.feature_spec, card.sensor
    assert fs is not None and sensor is not None
    assert card.input.quantization is not None and card.output.quantization is not None
    if len(windows) == 0:
        return np.zeros(0, dtype=np.float32)
    cfg = FeatureConfig.from_spec(fs.sample_rate_hz, tuple(sensor.axes), tuple(fs.sets), tuple(fs.bands_hz))
    z = standardize(extract(windows, cfg), np.asarray(fs.mean), np.asarray(fs.std)).astype(np.float32)
    q_in = (card.input.quantization.scale, card.input.quantization.zero_point)
    q_out = (card.output.quantization.scale, card.output.quantization.zero_point)
    return int8_scores(TflmModel(tflite), z, q_in, q_out)[0]


def assess(
    model: DeployedModel,
    config: TrainConfig,
    field_test: NDArray[np.float64],
    faults: NDArray[np.float64],
) -> dict[str, Any]:
    """One model on the held-out field windows (and the fault windows) at its own card threshold."""
    card = model.card
    out: dict[str, Any] = {
        "model_id": model.model_id,
        "model_version": model.version,
        "source": model.source,
        "threshold": card.threshold.value if card.threshold else None,
        "card_score_stats": card.score_stats.model_dump() if card.score_stats else None,
        "evaluated": False,
    }
    reason = incompatibility(card, config)
    if reason is None and model.tflite is None:
        reason = "the registry gave its card but not its model (pass --deployed DIR)"
    if reason is not None:
        out["reason"] = f"not scored: {reason}"
        return out
    assert card.threshold is not None
    threshold = card.threshold.value
    scores = model_scores(card, model.tflite or b"", field_test)
    stats = score_stats(scores)
    alarms = int(np.sum(scores > threshold))
    card_p95 = card.score_stats.p95 if card.score_stats else None
    out.update(
        evaluated=True,
        field={
            "windows": len(scores),
            "false_alarms": alarms,
            "false_alarm_rate": alarms / len(scores),
            "score_stats": stats,
            "p95_vs_card": stats["p95"] / card_p95 if card_p95 else None,
        },
        fault_windows=len(faults),
        fault_recall=None,
    )
    if len(faults):
        fault_scores = model_scores(card, model.tflite or b"", faults)
        out["fault_recall"] = float(np.mean(fault_scores > threshold))
    return out


def fault_windows(
    config: TrainConfig, variables: Mapping[str, str]
) -> tuple[NDArray[np.float64], NDArray[np.str_], dict[str, Any]]:
    """The config dataset's fault (test anomaly) windows, if it can be loaded (e.g. CWRU under
    EDGEFLEET_SHARED; the synthetic set is generated); otherwise none, and why."""
    empty = np.empty((0, config.data.window, len(config.data.axes)))
    try:
        path = resolve_data(config, variables)
        splits = load_splits(config.data, path)
    except MlError as err:
        log.info("no fault windows for the comparison: %s", err)
        return empty, np.asarray([], dtype=np.str_), {"source": None, "windows": 0, "reason": str(err)}
    labels = Counter(splits.test_anomaly_labels.tolist())
    return (
        splits.test_anomaly,
        splits.test_anomaly_labels,
        {"source": str(path), "windows": len(splits.test_anomaly), "labels": dict(labels)},
    )


def _field_summary(
    field: FieldWindows, downloaded: int, per_device: dict[str, dict[str, int]]
) -> dict[str, Any]:
    scores = [s for s in field.device_scores if s is not None]
    versions = Counter(v for v in field.model_versions if v)
    return {
        "downloaded": downloaded,
        "used": len(field),
        "skipped": field.skipped,
        "devices": len(per_device),
        "per_device": per_device,
        "first_ts": min(field.ts).isoformat() if field.ts else None,
        "last_ts": max(field.ts).isoformat() if field.ts else None,
        "model_versions": dict(versions),
        "device_score_p95": float(np.percentile(scores, 95)) if scores else None,
        "sha256": field.sha256,
    }


def _delta(candidate: dict[str, Any], deployed: dict[str, Any] | None) -> dict[str, float | None]:
    if not deployed or not deployed.get("evaluated") or not candidate.get("evaluated"):
        return {"false_alarm_rate": None, "fault_recall": None}
    far = candidate["field"]["false_alarm_rate"] - deployed["field"]["false_alarm_rate"]
    recall = None
    if candidate.get("fault_recall") is not None and deployed.get("fault_recall") is not None:
        recall = candidate["fault_recall"] - deployed["fault_recall"]
    return {"false_alarm_rate": far, "fault_recall": recall}


def retrain(
    config: TrainConfig,
    options: RetrainOptions,
    *,
    config_sha256: str | None = None,
    variables: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    on_download: Callable[[int], None] | None = None,
    client: FleetClient | None = None,
) -> RetrainResult:
    """Download, split, train, compare; writes the candidate and `retrain_report.json` to `options.out`."""
    variables = variables or {}
    own_client = client is None
    fleet = client or FleetClient(options.server, options.api_key)
    try:
        items = list(
            fleet.samples(
                options.model_id,
                since=options.since,
                device_kind=options.device_kind,
                max_samples=options.max_samples,
                on_page=on_download,
            )
        )
        field = decode_samples(items, config.data)
        parts = split_by_device_and_time(
            field, config.data.split, config.training.validation_fraction, options.min_windows
        )
        versions = Counter(v for v in field.model_versions if v)
        if options.deployed_dir is not None:
            deployed: DeployedModel | None = load_model_dir(options.deployed_dir)
        else:
            found = fleet.deployed_model(
                options.model_id, versions.most_common(1)[0][0] if versions else None
            )
            deployed = DeployedModel(**vars(found)) if found else None
    finally:
        if own_client:
            fleet.close()
    faults, fault_labels, fault_info = fault_windows(config, variables)
    base_version = deployed.version if deployed else config.model_version
    candidate_config = config.model_copy(
        update={
            "model_id": options.model_id,
            "model_version": options.version or next_version(base_version),
            "description": f"{config.description or options.model_id} (retrained on field windows)"[:256],
            "pruning": PruningConfig(enabled=False),  # report-only extras; not needed for a candidate
            "distillation": DistillationConfig(enabled=False),
        }
    )
    source = f"{options.server} samples: {len(field)} windows from {len(parts.per_device)} devices"
    result = train(
        candidate_config,
        options.out,
        config_sha256=config_sha256,
        progress=progress,
        splits=to_splits(parts, field, faults, fault_labels),
        data_source=source,
        parent_model=f"{deployed.model_id}@{deployed.version}" if deployed else None,
    )
    candidate = DeployedModel(
        result.card.model_id,
        result.card.model_version,
        result.card,
        result.files["model.tflite"].read_bytes(),
        str(options.out),
    )
    candidate_report = assess(candidate, config, parts.test, faults)
    deployed_report = assess(deployed, config, parts.test, faults) if deployed else None
    report: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(),
        "model_id": options.model_id,
        "server": options.server,
        "since": options.since.isoformat() if options.since else None,
        "split": "per device in time order: train | calibration | held-out test",
        "field_data": _field_summary(field, len(items), parts.per_device),
        "faults": fault_info,
        "candidate": {**candidate_report, "dir": str(options.out)},
        "deployed": deployed_report,
        "delta": _delta(candidate_report, deployed_report),
        "training": {
            "int8_auc": result.report["int8"]["auc"],
            "epochs_run": result.report["model"]["epochs_run"],
            "train_windows": result.report["data"]["train_windows"],
            "train_seconds": result.report["train_seconds"],
        },
    }
    path = options.out / REPORT_FILE
    try:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise RetrainError(f"cannot write {path}: {err.strerror}") from err
    result.files[REPORT_FILE] = path
    return RetrainResult(report, options.out, result)
