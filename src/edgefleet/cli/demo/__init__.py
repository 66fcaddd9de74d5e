"""`edgefleet demo`'s orchestration: server, broker, dashboard, demo account and a simulated fleet."""

from edgefleet.cli.demo.models import ModelPlan, cached_model, train_model
from edgefleet.cli.demo.options import DemoError, DemoOptions
from edgefleet.cli.demo.run import Demo, DemoInfo, Snapshot, StopSignals

__all__ = [
    "Demo",
    "DemoError",
    "DemoInfo",
    "DemoOptions",
    "ModelPlan",
    "Snapshot",
    "StopSignals",
    "cached_model",
    "train_model",
]
