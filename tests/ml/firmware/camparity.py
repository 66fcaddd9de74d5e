"""Host parity of a generated camera project: its own C/C++ against the camera node's twin.

Shared by tests/ml/firmware/test_camera_fw.py and `edgefleet bench firmware` (`camera_parity`);
imports no pytest. The harness (host/harness_camera.cc, built by edgefleet.ml.firmware.hostbuild)
runs the project's ef_image.c, inference.cc and ef_presence.c over raw camera frames; the Python
side is the twin itself: dsp.image, the tflite-micro interpreter (ml.runtime.TflmModel) and a real
edge.camera.CameraNode, whose events come out of its outbox.
"""

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgefleet.contracts import Channel, Event, decode, decode_topic
from edgefleet.dsp.image import frame_to_int8
from edgefleet.edge.backends.tflm import TflmBackend
from edgefleet.edge.camera import CameraConfig, CameraNode, PersonModel
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.provisioning import DeviceCredentials, NetworkSettings, SettingsStore
from edgefleet.ml.firmware import generate_project
from edgefleet.ml.firmware.hostbuild import (
    compile_harness,
    harness_source,
    project_ops,
    run_harness,
    tflm_library,
)
from edgefleet.ml.runtime import TflmModel
from tests.ml.firmware.camera_cbind import GRAYSCALE, RGB565, RGB888, rgb565_bytes, rgb565_to_rgb

PERSON_TFLITE = "models/person_detect/person_detect.tflite"
# Frames of a scene in view order (n: no_person.bmp, p: person.bmp): a person arrives, leaves,
# a one-frame glimpse that the smoothing absorbs, arrives again and leaves.
SEQUENCE = "nnnppppnnnnpnnppppnnnn"
HEADER_FIELDS = {"device_id", "seq", "ts", "clock_synced"}
MISMATCHES_KEPT = 10


def shared_images(shared: Path) -> dict[str, np.ndarray]:
    """Every test image of the person model, as true uint8 pixels: person.bmp stores its pixels
    as int8 bytes (XOR 0x80), no_person.bmp as uint8 (shared/models/person_detect/README.md)."""
    images = {}
    for path in sorted((shared / "models/person_detect").glob("*.bmp")):
        raw = np.asarray(Image.open(path))
        images[path.stem] = raw ^ 0x80 if path.stem == "person" else raw
    return images


def scene(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image filling the frame's height, centred on a mid-gray frame of width x height."""
    if gray.shape == (height, width):
        return gray
    side = min(width, height)
    big = np.asarray(Image.fromarray(gray).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.full((height, width), 128, dtype=np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    canvas[y0 : y0 + side, x0 : x0 + side] = big
    return canvas


def tint(gray: np.ndarray) -> np.ndarray:
    """A colour version of a grayscale scene (three different channels)."""
    g = gray.astype(np.float32)
    rgb = np.stack([g, g * 0.85 + 10, g * 0.7 + 30], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class View:
    """How a camera delivers a scene: frame size and esp32-camera pixel format."""

    name: str
    fmt: int
    width: int
    height: int

    def camera_frame(self, gray: np.ndarray) -> np.ndarray:
        """The frame's bytes as the driver writes them, (H, W) or (H, W, bytes per pixel)."""
        view = scene(gray, self.width, self.height)
        if self.fmt == GRAYSCALE:
            return view
        rgb = tint(view)
        return rgb565_bytes(rgb) if self.fmt == RGB565 else np.ascontiguousarray(rgb[..., ::-1])

    def twin_frame(self, camera: np.ndarray) -> np.ndarray:
        """The same frame as the twin's frame sources give it: (H, W) gray or (H, W, 3) RGB."""
        if self.fmt == GRAYSCALE:
            return camera
        return rgb565_to_rgb(camera) if self.fmt == RGB565 else np.ascontiguousarray(camera[..., ::-1])


VIEWS = (
    View("96x96 grayscale", GRAYSCALE, 96, 96),
    View("QVGA grayscale", GRAYSCALE, 320, 240),
    View("QVGA RGB565", RGB565, 320, 240),
    View("QQVGA RGB888", RGB888, 160, 120),
)


def person_model_dir(shared: Path, root: Path) -> Path:
    """The TFLM reference model with its model card, from the shared copy (never downloaded)."""
    from edgefleet.ml.pretrained import pull

    return pull("person-detect", root, from_path=shared / PERSON_TFLITE)


def twin_events(model_dir: Path, frames: Sequence[np.ndarray], state_dir: Path) -> list[Event]:
    """The `person` events a provisioned twin (CameraNode, default detection) puts in its outbox."""
    store = SettingsStore(state_dir)
    store.save(
        NetworkSettings("lab", "passphrase1", "WPA", False, "http://127.0.0.1:8000"),
        DeviceCredentials("cam-twin", "cam-twin", "s3cret", "mqtt://127.0.0.1:1883"),
    )
    bundle = load_model_dir(model_dir)
    node = CameraNode(CameraConfig(state_dir=state_dir), PersonModel(bundle, TflmBackend(bundle)))
    try:
        for frame in frames:
            node.process(frame)
        assert node.outbox is not None
        events = []
        for item in node.outbox.pending(limit=10_000):
            _, message = decode_topic(item.topic, item.payload)
            if isinstance(message, Event) and message.kind == "person":
                events.append(message)
        return events
    finally:
        if node.outbox is not None:
            node.outbox.close()


def event_body(event: Event) -> dict[str, Any]:
    """What an event says, without the header (device, seq, time) each side sets its own way."""
    return event.model_dump(exclude=HEADER_FIELDS)


def build_camera_harness(project_dir: Path, out: Path, cache_dir: Path | None = None) -> tuple[Path, float]:
    """The camera harness around a generated project; returns it and the TFLM library's build time."""
    tflm = tflm_library(project_ops(project_dir), cache_dir)
    main = project_dir / "main"
    sources = [main / name for name in ("inference.cc", "model_data.cc", "ef_image.c", "ef_presence.c")]
    return compile_harness(
        project_dir, sources, harness_source("harness_camera.cc"), out, tflm=tflm
    ), tflm.build_s


@dataclass
class CameraParityReport:
    images: int
    views: list[str]
    frames: int
    inputs_differing: int  # frames whose int8 input differs from dsp.image's in any pixel
    output_max_steps: int  # harness outputs vs the tflite-micro interpreter on dsp.image's input
    events: int  # the harness's events, over all views
    events_twin: int
    events_equal: bool
    mean_invoke_us: float  # host, reference kernels: not the chip's time
    mismatches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {f"camera_{key}": value for key, value in asdict(self).items()}


def check_camera(
    shared: Path, model_dir: Path, harness: Path, work: Path, views: Sequence[View] = VIEWS
) -> CameraParityReport:
    """The scene (SEQUENCE, then any other shared image) through each view: harness vs twin, frame
    by frame (int8 input, int8 output) and event by event."""
    images = shared_images(shared)
    scene_images = [images["person" if c == "p" else "no_person"] for c in SEQUENCE]
    scene_images += [img for name, img in images.items() if name not in ("person", "no_person")]
    reference = TflmModel((model_dir / "model.tflite").read_bytes())
    report = CameraParityReport(len(images), [v.name for v in views], 0, 0, 0, 0, 0, True, 0.0)
    invoke_us = 0.0
    for n, view in enumerate(views):
        camera = [view.camera_frame(img) for img in scene_images]
        path = work / f"frames-{n}.bin"
        path.write_bytes(b"".join(np.ascontiguousarray(f).tobytes() for f in camera))
        rows = run_harness(harness, ["frames", str(path), str(view.width), str(view.height), str(view.fmt)])
        twin_inputs = [frame_to_int8(view.twin_frame(f), 96, 96) for f in camera]
        expected = reference.run(np.stack(twin_inputs)[..., None])
        for i, (row, x, want) in enumerate(zip(rows, twin_inputs, expected, strict=True)):
            report.frames += 1
            invoke_us += row["invoke_us"]
            if bytes.fromhex(row["input"]) != x.tobytes():
                report.inputs_differing += 1
                _note(report, f"{view.name} frame {i}: int8 input differs from dsp.image")
            steps = int(np.max(np.abs(np.asarray(row["output"], np.int16) - want.astype(np.int16))))
            report.output_max_steps = max(report.output_max_steps, steps)
        harness_events = [decode(Channel.EVENT, json.dumps(row["event"])) for row in rows if row["event"]]
        twin = twin_events(model_dir, [view.twin_frame(f) for f in camera], work / f"twin-{n}")
        report.events += len(harness_events)
        report.events_twin += len(twin)
        if [event_body(e) for e in harness_events if isinstance(e, Event)] != [event_body(e) for e in twin]:
            report.events_equal = False
            _note(report, f"{view.name}: events differ: harness {harness_events} twin {twin}")
    report.mean_invoke_us = round(invoke_us / max(report.frames, 1), 1)
    return report


def _note(report: CameraParityReport, text: str) -> None:
    if len(report.mismatches) < MISMATCHES_KEPT:
        report.mismatches.append(text)


def camera_parity(
    shared: Path,
    work: Path | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate the person model's camera project, build its host harness with TFLite Micro, and
    compare it with the twin on the shared images (see check_camera). Keys start with `camera_`:
    camera_output_max_steps (the issue's camera_parity_max_steps), camera_events_equal, ..."""
    with tempfile.TemporaryDirectory(prefix="edgefleet-camera-") as tmp:
        root = work or Path(tmp)
        started = time.perf_counter()
        model_dir = person_model_dir(shared, root / "models")
        generate_project(model_dir, "esp32s3", root / "fw")
        harness, tflm_s = build_camera_harness(root / "fw", root / "harness_camera", cache_dir)
        built = time.perf_counter() - started
        if progress:
            progress(f"camera harness built in {built:.1f} s (TFLM library {tflm_s:.1f} s)")
        result = check_camera(shared, model_dir, harness, root).as_dict()
        result["camera_parity_max_steps"] = result["camera_output_max_steps"]
        result["camera_host_build_s"] = round(built, 2)
        return result
