"""The dense autoencoder (Keras), trained on standardized normal features only.

TensorFlow is imported inside functions so that importing `edgefleet.ml` stays cheap.
"""

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.config import TrainingConfig
from edgefleet.ml.errors import MlError
from edgefleet.ml.tf import import_tensorflow

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, float], None]  # (epoch, val_loss)


@dataclass
class TrainedModel:
    model: Any  # keras.Model
    epochs_run: int
    best_val_loss: float


def build_autoencoder(n_features: int, hidden: Sequence[int], activation: str = "relu", seed: int = 0) -> Any:
    """n -> hidden... -> n, linear output."""
    tf = import_tensorflow()

    tf.keras.utils.set_random_seed(seed)
    layers: list[Any] = [tf.keras.Input((n_features,), name="features")]
    layers += [tf.keras.layers.Dense(units, activation=activation) for units in hidden]
    layers.append(tf.keras.layers.Dense(n_features, name="reconstruction"))
    return tf.keras.Sequential(layers, name="autoencoder")


def fit(
    model: Any,
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    config: TrainingConfig,
    *,
    on_epoch: EpochCallback | None = None,
    epochs: int | None = None,
    masks: Sequence[tuple[Any, NDArray[np.float32]]] = (),
) -> TrainedModel:
    """Train `model` to map x -> y (MSE, Adam, shuffled minibatches, fixed seeds).

    The last `validation_fraction` of the rows drive early stopping (`patience` epochs without a
    better validation loss); the best weights are restored. One compiled TensorFlow function runs a
    whole epoch, which is several times faster than `keras.Model.fit` on models this small.
    """
    tf = import_tensorflow()

    tf.keras.utils.set_random_seed(config.seed)
    n_val = max(1, round(x.shape[0] * config.validation_fraction))
    if x.shape[0] - n_val < 1:
        raise MlError(f"{x.shape[0]} training rows are too few to train with a validation split")
    x_fit, y_fit = tf.constant(x[:-n_val]), tf.constant(y[:-n_val])
    x_val, y_val = tf.constant(x[-n_val:]), tf.constant(y[-n_val:])
    n = int(x_fit.shape[0])
    batch = min(config.batch_size, n)
    batches = -(-n // batch)
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)
    weights = model.trainable_variables
    constant_masks = [(variable, tf.constant(mask)) for variable, mask in masks]  # pruning: keep zeros zero

    def one_epoch(epoch: Any) -> Any:
        order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([config.seed, epoch])))
        for b in tf.range(batches):
            index = order[b * batch : (b + 1) * batch]
            xb, yb = tf.gather(x_fit, index), tf.gather(y_fit, index)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
            for variable, mask in constant_masks:
                variable.assign(variable * mask)
        return tf.reduce_mean(tf.square(model(x_val, training=False) - y_val))

    run_epoch = tf.function(one_epoch)

    best, best_weights, waited, run = np.inf, model.get_weights(), 0, 0
    for epoch in range(epochs or config.epochs):
        val_loss = float(run_epoch(tf.constant(epoch)))
        run = epoch + 1
        if on_epoch is not None:
            on_epoch(run, val_loss)
        if val_loss < best - 1e-7:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.set_weights(best_weights)
    log.info("trained %d epochs, best validation loss %.4f", run, best)
    return TrainedModel(model, run, float(best))


def predict(model: Any, x: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(model(x, training=False), dtype=np.float32)


def count_params(model: Any) -> int:
    return int(model.count_params())


def macs(n_features: int, hidden: Sequence[int]) -> int:
    """Multiply-accumulates of one inference (dense layers)."""
    sizes = [n_features, *hidden, n_features]
    return sum(a * b for a, b in itertools.pairwise(sizes))
