"""Inference backends behind one small interface: `tflm` (TFLite Micro kernels)."""

from edgefleet.edge.backends.base import InferenceBackend, create_backend

__all__ = ["InferenceBackend", "create_backend"]
