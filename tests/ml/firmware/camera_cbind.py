"""ctypes bindings of the camera node's portable C (ef_image.c, ef_presence.c), compiled by cbind."""

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.ml.firmware.cbind import compile_library

GRAYSCALE, RGB565, RGB888 = 0, 1, 2  # EF_PIXFORMAT_*
OK, EARG, ECROP, EWORKSPACE, EUNSUPPORTED, EFRAME = 0, -1, -2, -3, -4, -5  # EF_IMAGE_*
RATE_SLOTS = 256  # EF_PRESENCE_RATE_SLOTS
_i32p = ctypes.POINTER(ctypes.c_int32)
_u8p = ctypes.POINTER(ctypes.c_uint8)


class Plan(ctypes.Structure):
    _fields_ = [
        *[
            (name, ctypes.c_int)
            for name in [
                "in_w",
                "in_h",
                "format",
                "out_w",
                "out_h",
                "crop_x",
                "crop_y",
                "crop_w",
                "crop_h",
                "need_horizontal",
                "need_vertical",
                "ksize_h",
                "ksize_v",
                "first_row",
                "rows",
            ]
        ],
        ("coef_h", _i32p),
        ("coef_v", _i32p),
        ("bounds_h", _i32p),
        ("bounds_v", _i32p),
        ("temp", _u8p),
        ("luma", (ctypes.c_float * 256) * 3),
    ]


class Presence(ctypes.Structure):
    _fields_ = [
        ("threshold_on", ctypes.c_double),
        ("threshold_off", ctypes.c_double),
        ("smoothing", ctypes.c_double),
        ("has_smoothed", ctypes.c_int),
        ("smoothed", ctypes.c_double),
        ("present", ctypes.c_int),
        ("frames", ctypes.c_uint64),
        ("raised", ctypes.c_uint64),
        ("cleared", ctypes.c_uint64),
    ]


class Rate(ctypes.Structure):
    _fields_ = [("uptime_s", ctypes.c_double * RATE_SLOTS), ("head", ctypes.c_int), ("count", ctypes.c_int)]


class CameraHeader(ctypes.Structure):
    _fields_ = [
        ("device_id", ctypes.c_char_p),
        ("seq", ctypes.c_uint64),
        ("ts", ctypes.c_char_p),
        ("clock_synced", ctypes.c_int),
    ]


class CameraTelemetry(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_char_p),
        ("uptime_s", ctypes.c_double),
        ("interval_s", ctypes.c_double),
        ("frames", ctypes.c_uint64),
        ("inference_us", ctypes.c_double),
        ("arena_bytes", ctypes.c_uint64),
        ("outbox_depth", ctypes.c_uint64),
        ("outbox_dropped", ctypes.c_uint64),
        ("outbox_errors", ctypes.c_uint64),
        ("detections_per_hour", ctypes.c_double),
        ("firmware_version", ctypes.c_char_p),
    ]


@dataclass
class PreparedPlan:
    """A plan with the workspace it points into (kept alive together)."""

    plan: Plan
    workspace: ctypes.Array[ctypes.c_int32]


def compile_camera(main_dir: Path, out: Path) -> Path:
    return compile_library(main_dir, out, ("ef_image.c", "ef_presence.c"), "libefcamera.so")


class CameraC:
    """The compiled ef_image + ef_presence of one generated camera project."""

    def __init__(self, lib_path: Path) -> None:
        self.lib = lib = ctypes.CDLL(str(lib_path))
        lib.ef_image_workspace_bytes.restype = ctypes.c_size_t
        lib.ef_image_workspace_bytes.argtypes = [ctypes.c_int] * 4
        lib.ef_image_plan.argtypes = [ctypes.POINTER(Plan), *[ctypes.c_int] * 5, _i32p, ctypes.c_size_t]
        lib.ef_image_to_int8.argtypes = [
            ctypes.POINTER(Plan),
            _u8p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_int8),
        ]
        lib.ef_image_thumbnail_bytes.restype = ctypes.c_size_t
        lib.ef_image_thumbnail.argtypes = [
            ctypes.POINTER(Plan), _u8p, ctypes.c_size_t, ctypes.c_int, _u8p,
            ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
        ]  # fmt: skip
        lib.ef_presence_init.argtypes = [
            ctypes.POINTER(Presence),
            ctypes.c_double,
            ctypes.c_double,
            ctypes.c_double,
        ]
        lib.ef_presence_update.argtypes = [ctypes.POINTER(Presence), ctypes.c_double]
        lib.ef_person_score.restype = ctypes.c_double
        lib.ef_person_score.argtypes = [ctypes.c_int8, ctypes.c_double, ctypes.c_int]
        lib.ef_detection_rate_add.argtypes = [ctypes.POINTER(Rate), ctypes.c_double]
        lib.ef_detection_rate_per_hour.restype = ctypes.c_double
        lib.ef_detection_rate_per_hour.argtypes = [ctypes.POINTER(Rate), ctypes.c_double]
        lib.ef_camera_base64.restype = ctypes.c_long
        lib.ef_camera_base64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        for name in ("ef_camera_format_event", "ef_camera_format_telemetry", "ef_camera_format_status"):
            getattr(lib, name).restype = ctypes.c_int

    # ---- ef_image ----
    def plan(
        self, width: int, height: int, fmt: int, out_w: int, out_h: int, workspace_bytes: int | None = None
    ) -> tuple[int, PreparedPlan]:
        needed = int(self.lib.ef_image_workspace_bytes(width, height, out_w, out_h))
        size = needed if workspace_bytes is None else workspace_bytes
        workspace = (ctypes.c_int32 * max(1, -(-size // 4)))()
        plan = Plan()
        rc = self.lib.ef_image_plan(ctypes.byref(plan), width, height, fmt, out_w, out_h, workspace, size)
        return int(rc), PreparedPlan(plan, workspace)

    def to_int8(self, prepared: PreparedPlan, frame: bytes | np.ndarray) -> tuple[int, np.ndarray]:
        data = np.frombuffer(
            bytes(frame) if isinstance(frame, bytes) else np.ascontiguousarray(frame), np.uint8
        )
        plan = prepared.plan
        out = np.zeros((plan.out_h, plan.out_w), dtype=np.int8)
        rc = self.lib.ef_image_to_int8(
            ctypes.byref(plan),
            data.ctypes.data_as(_u8p),
            data.nbytes,
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        return int(rc), out

    def convert(self, frame: np.ndarray, fmt: int, out_h: int, out_w: int) -> np.ndarray:
        """One frame in a camera layout (H, W[, bytes per pixel]) -> (out_h, out_w) int8; asserts success."""
        rc, prepared = self.plan(frame.shape[1], frame.shape[0], fmt, out_w, out_h)
        assert rc == OK, rc
        rc, out = self.to_int8(prepared, frame)
        assert rc == OK, rc
        return out

    def thumbnail(self, prepared: PreparedPlan, frame: np.ndarray, max_side: int) -> np.ndarray:
        data = np.ascontiguousarray(frame, dtype=np.uint8)
        out = np.zeros(self.lib.ef_image_thumbnail_bytes(ctypes.byref(prepared.plan), max_side), np.uint8)
        w, h = ctypes.c_int(), ctypes.c_int()
        rc = self.lib.ef_image_thumbnail(
            ctypes.byref(prepared.plan), data.ctypes.data_as(_u8p), data.nbytes, max_side,
            out.ctypes.data_as(_u8p), ctypes.byref(w), ctypes.byref(h),
        )  # fmt: skip
        assert rc == OK, rc
        return out[: w.value * h.value].reshape(h.value, w.value)

    # ---- ef_presence ----
    def presence(self, on: float, off: float, smoothing: float) -> tuple[int, Presence]:
        p = Presence()
        return int(self.lib.ef_presence_init(ctypes.byref(p), on, off, smoothing)), p

    def update(self, p: Presence, score: float) -> int:
        return int(self.lib.ef_presence_update(ctypes.byref(p), score))

    def person_score(self, q: int, scale: float, zero_point: int) -> float:
        return float(self.lib.ef_person_score(q, scale, zero_point))

    def rate(self) -> Rate:
        r = Rate()
        self.lib.ef_detection_rate_init(ctypes.byref(r))
        return r

    def rate_add(self, r: Rate, uptime_s: float) -> None:
        self.lib.ef_detection_rate_add(ctypes.byref(r), uptime_s)

    def rate_per_hour(self, r: Rate, now_s: float) -> float:
        return float(self.lib.ef_detection_rate_per_hour(ctypes.byref(r), now_s))

    def base64(self, data: bytes, cap: int) -> tuple[int, str]:
        buf = ctypes.create_string_buffer(max(cap, 1))
        n = self.lib.ef_camera_base64(data, len(data), buf, cap)
        return int(n), buf.value.decode()

    def format(self, name: str, header: CameraHeader, *args: object, cap: int = 4096) -> tuple[int, str]:
        buf = ctypes.create_string_buffer(max(cap, 1))
        passed = [ctypes.byref(a) if isinstance(a, ctypes.Structure) else a for a in args]
        n = getattr(self.lib, f"ef_camera_format_{name}")(
            buf, ctypes.c_size_t(cap), ctypes.byref(header), *passed
        )
        return int(n), buf.value.decode()


def rgb565_bytes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, 2) RGB565 as esp32-camera stores it (high byte first)."""
    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    value = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    return np.stack([(value >> 8).astype(np.uint8), (value & 0xFF).astype(np.uint8)], axis=-1)


def rgb565_to_rgb(frame: np.ndarray) -> np.ndarray:
    """What esp32-camera's frame2jpg sees of an RGB565 frame (to_jpg.cpp): the low bits zero."""
    hi, lo = frame[..., 0].astype(np.uint16), frame[..., 1].astype(np.uint16)
    r = hi & 0xF8
    g = ((hi & 0x07) << 5) | ((lo & 0xE0) >> 3)
    b = (lo & 0x1F) << 3
    return np.stack([r, g, b], axis=-1).astype(np.uint8)
