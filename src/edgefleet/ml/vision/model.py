"""A small MobileNet-style classifier (depthwise-separable blocks) and its MAC count."""

from typing import Any

from edgefleet.ml.vision.config import Augmentation, VisionModelConfig

INPUT_RANGE = (-1.0, 1.0)
"""What the float model sees: `(pixel - 128) / 128` (dsp.image.frame_to_float)."""


def build_classifier(input_shape: tuple[int, int, int], config: VisionModelConfig, classes: int) -> Any:
    """Conv 3x3/2, then (depthwise 3x3/2 + pointwise 1x1) per width, global pooling, softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = layers.Conv2D(config.widths[0], 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
    for width in config.widths[1:]:
        x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.Conv2D(width, 1, use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="person_tiny")


def augmentation(config: Augmentation, seed: int) -> Any:
    """Random flips, shifts, zoom, brightness and contrast; active only while training."""
    import keras
    from keras import layers

    steps: list[Any] = []
    if config.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if config.shift:
        steps.append(layers.RandomTranslation(config.shift, config.shift, fill_mode="reflect", seed=seed))
    if config.zoom:
        steps.append(layers.RandomZoom(config.zoom, fill_mode="reflect", seed=seed))
    if config.brightness:
        steps.append(layers.RandomBrightness(config.brightness, value_range=INPUT_RANGE, seed=seed))
    if config.contrast:
        # value_range: Keras 3 clips to (0, 255) by default, which zeroed every dark pixel of our input
        steps.append(layers.RandomContrast(config.contrast, value_range=INPUT_RANGE, seed=seed))
    return keras.Sequential(steps, name="augment")


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference (convolutions and dense layers)."""
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * c * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            macs += int(layer.input.shape[-1]) * layer.units
    return int(macs)
