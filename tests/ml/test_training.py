from pathlib import Path

import numpy as np
import pytest

from edgefleet.ml.autoencoder import build_autoencoder, fit, macs
from edgefleet.ml.config import TrainingConfig
from edgefleet.ml.quantize import representative_rows, to_int8_tflite
from edgefleet.ml.runtime import LiteRtModel, quant_params


def test_training_is_reproducible_with_a_fixed_seed() -> None:
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    cfg = TrainingConfig(epochs=5, batch_size=32, patience=5, seed=3)
    runs = [fit(build_autoencoder(6, [4], seed=3), x, x, cfg) for _ in range(2)]
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert runs[0].epochs_run == 5


def test_early_stopping_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    y = rng.normal(size=(100, 4)).astype(np.float32)  # unlearnable: validation loss stalls
    trained = fit(build_autoencoder(4, [16], seed=0), x, y, TrainingConfig(epochs=300, patience=3, seed=0))
    assert trained.epochs_run < 300


def test_int8_model_has_int8_io_and_representative_rows_are_reproducible() -> None:
    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    rows = representative_rows(x, 50, seed=1)
    np.testing.assert_array_equal(rows, representative_rows(x, 50, seed=1))
    assert rows.shape == (50, 5)
    model = build_autoencoder(5, [3], seed=0)
    lite = LiteRtModel(to_int8_tflite(model, rows))
    (in_scale, _), (out_scale, _) = quant_params(lite)
    assert in_scale > 0 and out_scale > 0
    assert [t.dtype for t in lite.info()] == ["int8", "int8"]
    assert macs(18, [12, 8, 12]) == 18 * 12 + 12 * 8 + 8 * 12 + 12 * 18


def test_too_few_rows_to_train() -> None:
    from edgefleet.ml import MlError

    with pytest.raises(MlError, match="too few"):
        fit(
            build_autoencoder(2, [2]),
            np.zeros((1, 2), np.float32),
            np.zeros((1, 2), np.float32),
            TrainingConfig(),
        )


@pytest.mark.slow
def test_pruning_keeps_the_target_sparsity_and_distillation_shrinks_the_model() -> None:
    from edgefleet.ml.optimize import distill, prune, run_optional
    from tests.ml.helpers import config, tiny_synthetic

    cfg = config(
        tiny_synthetic(
            Path("unused.csv"),
            pruning={"enabled": True, "sparsity": 0.6, "fine_tune_epochs": 3},
            distillation={"enabled": True, "student_hidden": [4, 2, 4], "epochs": 5},
        )
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 10)).astype(np.float32)
    teacher = build_autoencoder(10, [12, 8, 12], seed=0)
    fit(teacher, x, x, TrainingConfig(epochs=3))  # trained: non-zero biases, as in real use
    pruned = prune(teacher, x, cfg)
    for layer in pruned.layers:
        kernel = layer.get_weights()[0]
        assert np.mean(kernel == 0) >= 0.59
    assert np.count_nonzero(teacher.layers[0].get_weights()[0]) == 10 * 12  # the teacher is untouched
    student = distill(teacher, x, cfg)
    assert [layer.units for layer in student.layers] == [4, 2, 4, 10]
    z = {"train": x, "test_normal": x[:20], "test_anomaly": x[20:40] * 4}
    report = run_optional(cfg, teacher, z, x[:50])
    assert set(report) == {"pruned", "distilled", "baseline"}
    assert report["distilled"]["flash_bytes"] < report["baseline"]["flash_bytes"]
    assert report["pruned"]["weights_nonzero"] < 0.45 * report["pruned"]["weights_total"]
