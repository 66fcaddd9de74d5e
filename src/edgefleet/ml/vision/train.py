"""train-vision: folder-per-class images -> small classifier -> int8 TFLite and the usual artifacts."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.contracts import Lineage, ModelCard, ThresholdSpec
from edgefleet.ml.export import c_array, write_artifacts
from edgefleet.ml.quantize import representative_rows, to_float_tflite, to_int8_tflite
from edgefleet.ml.runtime import TflmModel, measure_arena
from edgefleet.ml.targets import assess, get_target
from edgefleet.ml.tflite_info import io_specs, read_ops
from edgefleet.ml.vision.config import LABELS, VisionConfig
from edgefleet.ml.vision.data import ImageSet, load_images, stratified_split
from edgefleet.ml.vision.model import augmentation, build_classifier, count_macs
from edgefleet.ml.vision.report import classification_metrics, render_html

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]


@dataclass
class VisionResult:
    card: ModelCard
    report: dict[str, Any]
    int8_model: bytes
    float_model: bytes
    paths: dict[str, Path]


def _noop(stage: str, fraction: float) -> None:
    del stage, fraction


def _fit(
    config: VisionConfig, data: ImageSet, train: NDArray[np.int64], val: NDArray[np.int64], progress: Progress
) -> tuple[Any, int]:
    import keras

    keras.utils.set_random_seed(config.seed)
    height, width = config.data.image_size
    model = build_classifier((height, width, 1), config.model, len(LABELS))
    trainer = keras.Sequential([augmentation(config.augment, config.seed), model])
    trainer.compile(
        optimizer=keras.optimizers.Adam(config.training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    epochs = config.training.epochs

    report = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: progress("train", (epoch + 1) / epochs)
    )
    history = trainer.fit(
        data.x[train],
        data.y[train],
        validation_data=(data.x[val], data.y[val]),
        epochs=epochs,
        batch_size=config.training.batch_size,
        verbose=0,
        callbacks=[
            # BatchNorm statistics settle over the first epochs; judge only after that.
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.training.patience,
                restore_best_weights=True,
                start_from_epoch=min(10, epochs // 3),
            ),
            report,
        ],
    )
    return model, len(history.history["loss"])


def _int8_person_prob(int8_model: bytes, x: NDArray[np.float32]) -> NDArray[np.float64]:
    """Person probability from the TFLM int8 kernels, the way the camera node computes it."""
    q = np.clip(np.rint(x * 128.0), -128, 127).astype(np.int8)  # pixels - 128, exactly
    out_spec = io_specs(int8_model, 256 * 1024)[1]
    assert out_spec.quantization is not None
    raw = TflmModel(int8_model).run(q).reshape(len(x), -1).astype(np.float64)
    return (raw[:, LABELS.index("person")] - out_spec.quantization.zero_point) * out_spec.quantization.scale


def train_vision(config: VisionConfig, out: Path, progress: Progress = _noop) -> VisionResult:
    """Run the whole pipeline and write DIR/model.tflite, model_float.tflite, C array, card, reports."""
    started = time.perf_counter()
    progress("load", 0.0)
    data = load_images(config.data)
    train, val, test = stratified_split(
        data.y, config.data.validation_fraction, config.data.test_fraction, config.seed
    )
    progress("load", 1.0)
    model, epochs_run = _fit(config, data, train, val, progress)
    progress("quantize", 0.0)
    float_model = to_float_tflite(model)
    int8_model = to_int8_tflite(
        model, representative_rows(data.x[train], config.representative_images, config.seed)
    )
    progress("quantize", 1.0)

    progress("evaluate", 0.0)
    y_test = data.y[test]
    float_prob = np.asarray(model.predict(data.x[test], verbose=0))[:, LABELS.index("person")]
    int8_prob = _int8_person_prob(int8_model, data.x[test])
    arena = measure_arena(int8_model)
    inp, outp = io_specs(int8_model, arena)
    ops = read_ops(int8_model)
    macs = count_macs(model)
    progress("evaluate", 1.0)

    metrics_float = classification_metrics(y_test, float_prob, config.threshold)
    metrics_int8 = classification_metrics(y_test, int8_prob, config.threshold)
    report: dict[str, Any] = {
        "task": "person_detection",
        "labels": list(LABELS),
        "float": metrics_float,
        "int8": metrics_int8,
        "threshold": {"value": config.threshold, "policy": "fixed"},
        "model": {
            "flash_bytes": len(int8_model),
            "arena_bytes": arena,
            "ops": ops,
            "macs": macs,
            "params": int(model.count_params()),
            "c_array_bytes": len(c_array(int8_model)[1]),
        },
        "targets": {
            name: assess(get_target(name), len(int8_model), arena, macs, len(model.layers))
            for name in config.targets
        },
        "data": {
            "images": len(data.y),
            "per_class": data.per_class(),
            "rejected": len(data.rejected),
            "rejected_files": data.rejected[:20],
            "split": {"train": len(train), "validation": len(val), "test": len(test)},
        },
        "training": {"epochs_run": epochs_run, "seconds": round(time.perf_counter() - started, 1)},
    }
    card = ModelCard(
        model_id=config.model_id,
        model_version=config.model_version,
        task="person_detection",
        device_kind="camera",
        created=datetime.now(UTC),
        description=f"person/no-person classifier, {'-'.join(map(str, config.model.widths))} widths",
        input=inp,
        output=outp,
        labels=list(LABELS),
        threshold=ThresholdSpec(value=config.threshold, policy="fixed"),
        ops=ops,
        flash_bytes=len(int8_model),
        arena_bytes=arena,
        metrics={f"int8.{k}": float(v) for k, v in metrics_int8.items() if isinstance(v, float)},
        lineage=Lineage(framework="keras/tensorflow"),
    )
    paths = write_artifacts(
        out,
        int8_model=int8_model,
        float_model=float_model,
        card=card,
        report=report,
        report_html=render_html(config.model_id, report),
    )
    log.info("int8 accuracy %.3f on %d test images", metrics_int8["accuracy"], len(test))
    return VisionResult(card, report, int8_model, float_model, paths)
