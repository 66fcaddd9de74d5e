"""Optional model optimizations, reported next to the main model: magnitude pruning with
fine-tuning, and knowledge distillation into a smaller student. Neither replaces the exported model.

Note: TFLite stores pruned weights densely, so pruning does not shrink `model.tflite` by itself;
we report the non-zero weight count and the gzip size (what a compressed OTA image would carry).
"""

import gzip
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp import dequantize, quantize, reconstruction_score
from edgefleet.ml import autoencoder
from edgefleet.ml.config import TrainConfig
from edgefleet.ml.evaluate import auc
from edgefleet.ml.quantize import to_int8_tflite
from edgefleet.ml.runtime import LiteRtModel, quant_params
from edgefleet.ml.tf import import_tensorflow

log = logging.getLogger(__name__)


def _int8_auc(model_bytes: bytes, z: dict[str, NDArray[np.float32]]) -> float:
    lite = LiteRtModel(model_bytes)
    q_in, q_out = quant_params(lite)

    def score(x: NDArray[np.float32]) -> NDArray[np.float32]:
        return reconstruction_score(x, dequantize(lite.run(quantize(x, *q_in)), *q_out))

    return auc(score(z["test_normal"]), score(z["test_anomaly"]))


def _summary(model: Any, model_bytes: bytes, z: dict[str, NDArray[np.float32]]) -> dict[str, Any]:
    weights = [w for layer in model.layers for w in layer.get_weights()[:1]]
    nonzero = int(sum(np.count_nonzero(w) for w in weights))
    total = int(sum(w.size for w in weights))
    return {
        "int8_auc": _int8_auc(model_bytes, z),
        "flash_bytes": len(model_bytes),
        "gzip_bytes": len(gzip.compress(model_bytes, 9)),
        "weights_nonzero": nonzero,
        "weights_total": total,
    }


def prune(model: Any, z_train: NDArray[np.float32], config: TrainConfig) -> Any:
    """Zero the smallest-magnitude kernel weights of each layer to the target sparsity, then
    fine-tune with the mask re-applied after every step."""
    tf = import_tensorflow()

    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    masks: list[tuple[Any, NDArray[np.float32]]] = []
    for layer in clone.layers:
        kernel = layer.kernel
        values = np.asarray(kernel.numpy())
        mask = (np.abs(values) > np.quantile(np.abs(values), config.pruning.sparsity)).astype(np.float32)
        kernel.assign(values * mask)
        masks.append((kernel, mask))
    training = config.training.model_copy(
        update={"epochs": config.pruning.fine_tune_epochs, "learning_rate": config.training.learning_rate / 3}
    )
    return autoencoder.fit(clone, z_train, z_train, training, masks=masks).model


def distill(teacher: Any, z_train: NDArray[np.float32], config: TrainConfig) -> Any:
    """Train a smaller student to reproduce the teacher's reconstructions."""
    student = autoencoder.build_autoencoder(
        z_train.shape[1], config.distillation.student_hidden, config.model.activation, config.training.seed
    )
    targets = autoencoder.predict(teacher, z_train)
    training = config.training.model_copy(update={"epochs": config.distillation.epochs})
    return autoencoder.fit(student, z_train, targets, training).model


def run_optional(
    config: TrainConfig, model: Any, z: dict[str, NDArray[np.float32]], representative: NDArray[np.float32]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.pruning.enabled:
        pruned = prune(model, z["train"], config)
        out["pruned"] = {
            "sparsity": config.pruning.sparsity,
            **_summary(pruned, to_int8_tflite(pruned, representative), z),
        }
    if config.distillation.enabled:
        student = distill(model, z["train"], config)
        out["distilled"] = {
            "student_hidden": list(config.distillation.student_hidden),
            **_summary(student, to_int8_tflite(student, representative), z),
        }
    if out:
        teacher_bytes = to_int8_tflite(model, representative)
        out["baseline"] = _summary(model, teacher_bytes, z)
    return out
