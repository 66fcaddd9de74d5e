"""Firmware export: an ESP-IDF project for a trained model, with a portable C core verified on the host.

`generate_project(model_dir, "esp32s3", out)` renders the Jinja2 templates in `templates/` from the
model card and `model.tflite`; `edgefleet model export` is its command line.
"""

from edgefleet.ml.firmware.errors import FirmwareError
from edgefleet.ml.firmware.ops import RESOLVER_METHODS, resolver_methods
from edgefleet.ml.firmware.options import ESP_IDF_TARGETS, EspTarget, FirmwareOptions
from edgefleet.ml.firmware.project import PROJECT_FILES, arena_bytes, generate_project, render_project

__all__ = [
    "ESP_IDF_TARGETS",
    "PROJECT_FILES",
    "RESOLVER_METHODS",
    "EspTarget",
    "FirmwareError",
    "FirmwareOptions",
    "arena_bytes",
    "generate_project",
    "render_project",
    "resolver_methods",
]
