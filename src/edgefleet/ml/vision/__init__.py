"""Vision models for the camera node: a small person/no-person classifier, trained and exported int8."""

from edgefleet.ml.vision.config import LABELS, VisionConfig, load_vision_config
from edgefleet.ml.vision.train import VisionResult, train_vision

__all__ = ["LABELS", "VisionConfig", "VisionResult", "load_vision_config", "train_vision"]
