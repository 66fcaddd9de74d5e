"""`train`: config -> data -> features -> autoencoder -> int8 -> threshold -> evaluation -> artifacts.

Each step is a function returning values; `train` strings them together and reports progress
through an optional callback `progress(stage, fraction)` (fraction in [0, 1] within the stage).
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.contracts import (
    FaultProbe,
    FeatureSpec,
    Lineage,
    ModelCard,
    Quantization,
    ScoreStats,
    SensorSpec,
    TensorSpec,
    ThresholdSpec,
)
from edgefleet.dsp import (
    FeatureConfig,
    dequantize,
    extract,
    feature_names,
    quantize,
    reconstruction_score,
    standardize,
)
from edgefleet.ml import autoencoder, optimize, selftest
from edgefleet.ml.baseline import fit_kmeans
from edgefleet.ml.config import TrainConfig, expand_path
from edgefleet.ml.datasets import Splits, load_splits
from edgefleet.ml.evaluate import auc, calibrate_threshold, detection_metrics, roc, score_stats
from edgefleet.ml.export import write_artifacts
from edgefleet.ml.probes import select_fault_probes
from edgefleet.ml.quantize import representative_rows, to_float_tflite, to_int8_tflite
from edgefleet.ml.report_html import render
from edgefleet.ml.runtime import LiteRtModel, TflmModel, measure_arena, quant_params
from edgefleet.ml.synthdata import write_synthetic
from edgefleet.ml.targets import COST_SOURCE, assess, get_target
from edgefleet.ml.tf import import_tensorflow

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]
STD_FLOOR = 1e-3


@dataclass
class TrainResult:
    report: dict[str, Any]
    card: ModelCard
    files: dict[str, Path]


def _noop(stage: str, fraction: float) -> None:
    pass


def feature_config(config: TrainConfig) -> FeatureConfig:
    return FeatureConfig.from_spec(
        config.data.sample_rate_hz, config.data.axes, config.features.sets, config.features.bands_hz
    )


def resolve_data(config: TrainConfig, variables: Mapping[str, str]) -> Path:
    """The dataset path; a missing synthetic CSV is generated from `data.synth`."""
    path = expand_path(config.data.path, dict(variables))
    if not path.exists() and config.data.format == "csv_table" and config.data.synth is not None:
        log.info("generating the synthetic dataset %s", path)
        write_synthetic(config.data, config.data.synth, path)
    return path


def standardization(features: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    mean = features.mean(axis=0).astype(np.float32)
    std = np.maximum(features.std(axis=0), STD_FLOOR).astype(np.float32)
    return mean, std


def int8_scores(
    runner: TflmModel | LiteRtModel, z: NDArray[np.float32], q_in: tuple[float, int], q_out: tuple[float, int]
) -> tuple[NDArray[np.float32], NDArray[np.int8]]:
    """The device's score: quantize z, run the int8 model, dequantize, MSE against z."""
    if len(z) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(z.shape, dtype=np.int8)
    q = runner.run(quantize(z, *q_in))
    return reconstruction_score(z, dequantize(q, *q_out)), np.asarray(q, dtype=np.int8)


def float_scores(model: bytes, z: NDArray[np.float32]) -> NDArray[np.float32]:
    if len(z) == 0:
        return np.zeros(0, dtype=np.float32)
    return reconstruction_score(z, LiteRtModel(model).run(z.astype(np.float32)))


def train(
    config: TrainConfig,
    out: Path,
    *,
    variables: Mapping[str, str] | None = None,
    config_sha256: str | None = None,
    progress: Progress | None = None,
    splits: Splits | None = None,
    data_source: str | None = None,
    parent_model: str | None = None,
) -> TrainResult:
    """`splits` (with `data_source` naming them) replaces loading `config.data`, e.g. field windows
    for retraining (`ml.retrain`); their `test_anomaly` may be empty (anomaly metrics are then None)."""
    started = time.perf_counter()
    step = progress or _noop
    mcu_targets = [get_target(name) for name in config.targets]  # fail before training, not after
    step("data", 0.0)
    if splits is None:
        data_path = resolve_data(config, variables or {})
        splits = load_splits(config.data, data_path)
        data_source = str(data_path)
    faults = len(splits.test_anomaly) > 0
    step("data", 1.0)
    fcfg = feature_config(config)
    names = feature_names(fcfg)
    feats = {
        k: extract(x, fcfg) if len(x := getattr(splits, k)) else np.zeros((0, len(names)), np.float32)
        for k in ("train", "calibration", "test_normal", "test_anomaly")
    }
    mean, std = standardization(feats["train"])
    z = {k: standardize(v, mean, std) for k, v in feats.items()}  # exactly as on the device
    step("features", 1.0)

    hidden = list(config.model.hidden)
    model = autoencoder.build_autoencoder(len(names), hidden, config.model.activation, config.training.seed)
    epochs = config.training.epochs
    trained = autoencoder.fit(
        model, z["train"], z["train"], config.training, on_epoch=lambda e, _loss: step("train", e / epochs)
    )
    step("train", 1.0)
    float_model = to_float_tflite(trained.model)
    rep = representative_rows(z["train"], config.quantization.representative_windows, config.training.seed)
    int8_model = to_int8_tflite(trained.model, rep)
    step("quantize", 1.0)

    lite = LiteRtModel(int8_model)
    q_in, q_out = quant_params(lite)
    tflm = TflmModel(int8_model)
    s_cal, _ = int8_scores(tflm, z["calibration"], q_in, q_out)
    s_norm, q_norm = int8_scores(tflm, z["test_normal"], q_in, q_out)
    s_anom, q_anom = int8_scores(tflm, z["test_anomaly"], q_in, q_out)
    threshold = calibrate_threshold(s_cal, config.threshold)
    f_norm, f_anom = float_scores(float_model, z["test_normal"]), float_scores(float_model, z["test_anomaly"])
    kmeans = fit_kmeans(z["train"], config.kmeans_clusters, config.training.seed)
    k_norm, k_anom = (
        kmeans.score(z["test_normal"]),
        kmeans.score(z["test_anomaly"]) if faults else np.zeros(0),
    )
    k_thr = calibrate_threshold(kmeans.score(z["calibration"]), config.threshold).value  # same policy
    step("evaluate", 0.5)

    # Parity: LiteRT vs tflite-micro on every test output.
    lite_q = np.concatenate(
        [lite.run(quantize(z[k], *q_in)) for k in ("test_normal", "test_anomaly") if len(z[k])]
    ).astype(np.int16)
    tflm_q = np.concatenate([q_norm, q_anom]).astype(np.int16)
    step_diff = np.abs(lite_q - tflm_q)
    arena = measure_arena(int8_model)
    ops = lite.ops()
    macs = autoencoder.macs(len(names), hidden)
    targets = {
        target.name: assess(target, len(int8_model), arena, macs, len(hidden) + 1) for target in mcu_targets
    }
    step("evaluate", 1.0)

    optimized: dict[str, Any] = {}
    if faults and (config.pruning.enabled or config.distillation.enabled):
        optimized = optimize.run_optional(config, trained.model, z, rep)
    step("optimize", 1.0)

    metrics: dict[str, float | None] = {**detection_metrics(s_norm, s_anom, threshold.value)}
    if not faults:  # nothing to detect: no recall, precision or misses to report
        metrics.update(recall=None, precision=None, missed=None)
    stats = score_stats(s_cal)
    report: dict[str, Any] = {
        "float": {"auc": auc(f_norm, f_anom) if faults else None},
        "int8": {
            "auc": auc(s_norm, s_anom) if faults else None,
            **metrics,
            "test_normal_windows": len(s_norm),
            "test_anomaly_windows": len(s_anom),
        },
        "baseline_kmeans": {
            "auc": auc(k_norm, k_anom) if faults else None,
            "clusters": int(kmeans.model.n_clusters),
            "threshold": k_thr,
            **detection_metrics(k_norm, k_anom, k_thr),
        },
        "threshold": {
            "value": threshold.value,
            "policy": threshold.policy,
            "percentile": threshold.percentile,
            "target_false_alarm_rate": threshold.target_false_alarm_rate,
            "calibration_windows": len(s_cal),
        },
        "score_stats": stats,
        "model": {
            "id": config.model_id,
            "version": config.model_version,
            "description": config.description,
            "flash_bytes": len(int8_model),
            "float_flash_bytes": len(float_model),
            "arena_bytes": arena,
            "arena_measured_with": "tflite-micro Python interpreter (RecordingMicroAllocator + probes), "
            "64-bit host",
            "ops": ops,
            "macs": macs,
            "params": autoencoder.count_params(trained.model),
            "layers": [len(names), *hidden, len(names)],
            "epochs_run": trained.epochs_run,
            "best_val_loss": trained.best_val_loss,
        },
        "parity": {
            "max_step_diff": int(step_diff.max()),
            "outputs_differing": float((step_diff > 0).mean()),
            "outputs": int(step_diff.size),
        },
        "targets": targets,
        "data": {
            "path": data_source or "in-memory windows",
            "windows": splits.stats.windows,
            "rejected": splits.stats.rejected,
            "rejected_reasons": splits.stats.rejected_reasons,
            "tail_samples_dropped": splits.stats.tail_samples_dropped,
            "per_label": splits.stats.per_label,
            "train_windows": len(z["train"]),
            "sample_rate_hz": config.data.sample_rate_hz,
            "window": config.data.window,
            "hop": config.data.hop,
            "axes": list(config.data.axes),
        },
        "features": {"names": names, "sets": list(config.features.sets)},
        "optimization": optimized,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    card = build_card(
        config,
        names=names,
        mean=mean,
        std=std,
        threshold=threshold,
        stats=stats,
        q_in=q_in,
        q_out=q_out,
        ops=ops,
        flash=len(int8_model),
        arena=arena,
        report=report,
        data_sha256=splits.stats.sha256,
        config_sha256=config_sha256,
        parent_model=parent_model,
        fault_probes=select_fault_probes(feats["test_anomaly"], splits.test_anomaly_labels),
    )
    html = render(
        report,
        s_norm,
        s_anom,
        {
            "int8 autoencoder": roc(s_norm, s_anom),
            "float autoencoder": roc(f_norm, f_anom),
            "K-means": roc(k_norm, k_anom),
        }
        if faults
        else {},
        COST_SOURCE,
    )
    files = write_artifacts(
        out, int8_model=int8_model, float_model=float_model, card=card, report=report, report_html=html
    )
    if len(names) <= selftest.MAX_OUTPUTS:  # the device's OTA self-test (docs/model-lifecycle.md)
        files[selftest.SELF_TEST_FILE] = selftest.write_self_test(out, selftest.make_self_test(out))
    step("export", 1.0)
    return TrainResult(report, card, files)


def build_card(
    config: TrainConfig,
    *,
    names: list[str],
    mean: NDArray[np.float32],
    std: NDArray[np.float32],
    threshold: Any,
    stats: dict[str, float],
    q_in: tuple[float, int],
    q_out: tuple[float, int],
    ops: list[str],
    flash: int,
    arena: int,
    report: dict[str, Any],
    data_sha256: str,
    config_sha256: str | None,
    parent_model: str | None = None,
    fault_probes: list[FaultProbe] | None = None,
) -> ModelCard:
    tf = import_tensorflow()

    n = len(names)
    d = config.data
    return ModelCard(
        model_id=config.model_id,
        model_version=config.model_version,
        task="anomaly_detection",
        device_kind="vibration",
        created=datetime.now(UTC),
        description=config.description,
        input=TensorSpec(
            shape=[1, n], dtype="int8", quantization=Quantization(scale=q_in[0], zero_point=q_in[1])
        ),
        output=TensorSpec(
            shape=[1, n], dtype="int8", quantization=Quantization(scale=q_out[0], zero_point=q_out[1])
        ),
        labels=["normal", "anomaly"],
        sensor=SensorSpec(
            axes=list(d.axes), units=list(d.units), range_min=list(d.range_min), range_max=list(d.range_max)
        ),
        feature_spec=FeatureSpec(
            sample_rate_hz=d.sample_rate_hz,
            window=d.window,
            hop=d.hop,
            sets=list(config.features.sets),
            bands_hz=list(config.features.bands_hz),
            names=names,
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
        ),
        threshold=ThresholdSpec(
            value=threshold.value,
            policy=threshold.policy,
            percentile=threshold.percentile,
            target_false_alarm_rate=threshold.target_false_alarm_rate,
        ),
        score_stats=ScoreStats(
            mean=stats["mean"],
            std=stats["std"],
            p50=stats["p50"],
            p95=stats["p95"],
            p99=stats["p99"],
            max=stats["max"],
            count=int(stats["count"]),
        ),
        ops=ops,
        flash_bytes=flash,
        arena_bytes=arena,
        training_data_sha256=data_sha256 or None,
        metrics={
            name: value
            for name, value in {
                "int8_auc": report["int8"]["auc"],
                "float_auc": report["float"]["auc"],
                "recall": report["int8"]["recall"],
                "precision": report["int8"]["precision"],
                "false_alarm_rate": report["int8"]["false_alarm_rate"],
                "kmeans_auc": report["baseline_kmeans"]["auc"],
            }.items()
            if value is not None
        },
        fault_probes=fault_probes or [],
        lineage=Lineage(
            parent_model=parent_model, config_sha256=config_sha256, framework=f"tensorflow {tf.__version__}"
        ),
    )
