"""Build a tiny int8 autoencoder model directory for tests (TensorFlow is allowed in tests, not in edge)."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgefleet.contracts import (
    FaultProbe,
    FeatureSpec,
    ModelCard,
    Quantization,
    ScoreStats,
    SensorSpec,
    TensorSpec,
    ThresholdSpec,
    dump_model_card,
)
from edgefleet.ml.probes import select_fault_probes

AXES = ["ax", "ay", "az", "gx", "gy", "gz"]


def stats_names() -> list[str]:
    from edgefleet import dsp

    return dsp.feature_names(dsp.FeatureConfig.from_spec(200.0, tuple(AXES), ("stats",)))


def mpu6050_sensor() -> SensorSpec:
    return SensorSpec(
        axes=AXES,
        units=["g", "g", "g", "dps", "dps", "dps"],
        range_min=[-2.0] * 3 + [-250.0] * 3,
        range_max=[2.0] * 3 + [250.0] * 3,
    )


def measure_arena(tflite: bytes) -> int:
    """The model factory's measurement (each probe in its own process: a small arena can crash TFLM)."""
    from edgefleet.ml.runtime import measure_arena as measure

    return int(measure(tflite))


def build_model_dir(
    directory: Path,
    train_features: np.ndarray,
    score_fn: Callable[[Path, np.ndarray], np.ndarray] | None = None,
    *,
    sample_rate_hz: float = 200.0,
    window: int = 128,
    names: list[str] | None = None,
    sensor: SensorSpec | None = None,
    sets: tuple[str, ...] = ("stats",),
    bands_hz: tuple[tuple[float, float], ...] = (),
    hop: int | None = None,
    hidden: tuple[int, ...] = (12, 8, 12),
    epochs: int = 60,
    percentile: float = 99.0,
    seed: int = 0,
    fault_features: dict[str, np.ndarray] | None = None,
) -> Path:
    """Train a dense autoencoder on raw feature vectors (N, F); write model.tflite + model_card.json.

    `fault_features` (label -> raw features of known fault windows) become the card's fault probes."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    x = np.asarray(train_features, dtype=np.float64)
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    z = ((x - mean) / std).astype(np.float32)
    n_features = z.shape[1]
    layers = [tf.keras.Input((n_features,))]
    layers += [tf.keras.layers.Dense(h, activation="relu") for h in hidden]
    layers += [tf.keras.layers.Dense(n_features)]
    model = tf.keras.Sequential(layers)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(z, z, epochs=epochs, batch_size=64, verbose=0)

    def representative() -> object:
        for row in z[:300]:
            yield [row[None, :]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite = converter.convert()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.tflite").write_bytes(tflite)

    interp = tf.lite.Interpreter(model_content=tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_q = Quantization(scale=float(inp["quantization"][0]), zero_point=int(inp["quantization"][1]))
    out_q = Quantization(scale=float(out["quantization"][0]), zero_point=int(out["quantization"][1]))
    card = ModelCard(
        model_id="test-ae",
        model_version="0.0.1",
        task="anomaly_detection",
        device_kind="vibration",
        created=datetime.now(UTC),
        description="tiny test autoencoder",
        input=TensorSpec(shape=[1, n_features], dtype="int8", quantization=in_q),
        output=TensorSpec(shape=[1, n_features], dtype="int8", quantization=out_q),
        sensor=sensor or mpu6050_sensor(),
        feature_spec=FeatureSpec(
            sample_rate_hz=sample_rate_hz,
            window=window,
            hop=hop or window,
            sets=list(sets),  # type: ignore[arg-type]
            bands_hz=list(bands_hz),
            names=names or stats_names()[:n_features],
            mean=mean.tolist(),
            std=std.tolist(),
        ),
        threshold=ThresholdSpec(
            value=1.0,
            policy="percentile",
            percentile=percentile,
            target_false_alarm_rate=1 - percentile / 100,
        ),
        ops=["FULLY_CONNECTED"],
        flash_bytes=len(tflite),
        arena_bytes=measure_arena(tflite),
        fault_probes=_probes(fault_features),
    )
    (directory / "model_card.json").write_text(dump_model_card(card), encoding="utf-8")
    if score_fn is not None:
        scores = score_fn(directory, x)
        stats = ScoreStats(
            mean=float(scores.mean()),
            std=float(scores.std()),
            p50=float(np.quantile(scores, 0.5)),
            p95=float(np.quantile(scores, 0.95)),
            p99=float(np.quantile(scores, 0.99)),
            max=float(scores.max()),
            count=len(scores),
        )
        data = json.loads(dump_model_card(card))
        data["threshold"]["value"] = float(np.quantile(scores, percentile / 100))
        data["score_stats"] = json.loads(stats.model_dump_json())
        (directory / "model_card.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return directory


def _probes(fault_features: dict[str, np.ndarray] | None) -> list[FaultProbe]:
    if not fault_features:
        return []
    features = np.concatenate([np.asarray(v, dtype=np.float64) for v in fault_features.values()])
    labels = np.concatenate([[k] * len(v) for k, v in fault_features.items()])
    return select_fault_probes(features, labels)
