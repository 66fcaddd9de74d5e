"""The camera node's QR provisioning C (ef_qr_provision.c with ef_provision.c, ef_wire.c, ef_image.c)
built on the host, its decoder hook answered by zxing-cpp through a ctypes callback, and camera
frames of a provisioning code as the CLI renders it (segno), seen at a distance, tilted, out of
focus and noisy."""

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tests.ml.firmware.camera_cbind import GRAYSCALE, RGB565, RGB888, Plan, rgb565_bytes
from tests.ml.firmware.cbind import build_model_independent
from tests.ml.firmware.fleet_c import Provision

HOST = Path(__file__).parent / "host"
PORTABLE = ("main/ef_image.h", "main/ef_image.c", "main/ef_qr_decode.h", "main/ef_qr_provision.h",
            "main/ef_qr_provision.c")  # fmt: skip
REASONS = ("ok", "foreign", "truncated", "malformed", "version", "invalid", "too_long", "decoder")
SCANNING, CONFIRMING, ACCEPTED, TIMED_OUT = 0, 1, 2, 3
NO_CODE, TOO_LONG, DECODER_ERROR = -1, -2, -3
TEXT_MAX, LOG_BYTES = 1024, 1024
QVGA = (320, 240)

DECODER = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
)


class QrConfig(ctypes.Structure):
    _fields_ = [
        ("confirmations", ctypes.c_uint),
        ("timeout_ms", ctypes.c_uint32),
        ("max_passphrase_bytes", ctypes.c_size_t),
        ("max_server_url_bytes", ctypes.c_size_t),
    ]


class QrProvision(ctypes.Structure):
    _fields_ = [
        ("config", QrConfig),
        ("state", ctypes.c_int),
        ("started_ms", ctypes.c_uint32),
        ("frames", ctypes.c_uint32),
        ("frames_without_code", ctypes.c_uint32),
        ("rejected", ctypes.c_uint32 * len(REASONS)),
        ("replaced", ctypes.c_uint32),
        ("last_reason", ctypes.c_int),
        ("seen", ctypes.c_uint),
        ("candidate_len", ctypes.c_size_t),
        ("candidate", ctypes.c_char * (TEXT_MAX + 1)),
        ("decoded", ctypes.c_char * (TEXT_MAX + 1)),
        ("payload", Provision),
        ("log_len", ctypes.c_size_t),
        ("log", ctypes.c_char * LOG_BYTES),
    ]

    def refusals(self) -> dict[str, int]:
        return {REASONS[i]: int(n) for i, n in enumerate(self.rejected) if n}

    def log_text(self) -> str:
        return bytes(self.log)[: self.log_len].decode()


def zxing_decoder() -> Callable[[np.ndarray], bytes | None]:
    """The first QR code's raw bytes, as a raw-byte decoder on the chip (quirc) would give them."""
    import zxingcpp

    def decode(gray: np.ndarray) -> bytes | None:
        for result in zxingcpp.read_barcodes(gray):
            if result.valid and result.format == zxingcpp.BarcodeFormat.QRCode:
                return bytes(result.bytes)
        return None

    return decode


class QrC:
    """The compiled library; `decode` answers the C hook ef_qr_decode (zxing-cpp by default)."""

    def __init__(self, out: Path) -> None:
        from edgefleet.ml.firmware.camera import render_portable

        main = out / "main"
        main.mkdir(parents=True, exist_ok=True)
        for path in PORTABLE:
            (out / path).write_bytes(render_portable(path))
        sources = (main / "ef_image.c", main / "ef_qr_provision.c", HOST / "qr_decode_callback.c")
        lib_path = build_model_independent(
            ("main/ef_provision.c", "main/ef_wire.c", "main/ef_json.c"), out, "libefqr.so", sources
        )
        self.lib = lib = ctypes.CDLL(str(lib_path))
        lib.host_sizeof_qr_provision.restype = ctypes.c_size_t
        assert lib.host_sizeof_qr_provision() == ctypes.sizeof(QrProvision), (
            "QrProvision mirrors the C struct"
        )
        lib.ef_qr_provision_init.argtypes = [
            ctypes.POINTER(QrProvision),
            ctypes.POINTER(QrConfig),
            ctypes.c_uint32,
        ]
        lib.ef_qr_provision_restart.argtypes = [ctypes.POINTER(QrProvision), ctypes.c_uint32]
        lib.ef_qr_provision_frame.argtypes = [ctypes.POINTER(QrProvision), ctypes.POINTER(ctypes.c_uint8),
                                              ctypes.c_int, ctypes.c_int, ctypes.c_uint32]  # fmt: skip
        lib.ef_qr_provision_text.argtypes = [ctypes.POINTER(QrProvision), ctypes.c_char_p, ctypes.c_int,
                                             ctypes.c_uint32]  # fmt: skip
        lib.ef_qr_provision_wipe.argtypes = [ctypes.POINTER(QrProvision)]
        lib.ef_qr_reason_name.restype = ctypes.c_char_p
        lib.ef_image_workspace_bytes.restype = ctypes.c_size_t
        lib.ef_image_workspace_bytes.argtypes = [ctypes.c_int] * 4
        lib.ef_image_plan.argtypes = [ctypes.POINTER(Plan), *[ctypes.c_int] * 5,
                                      ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t]  # fmt: skip
        lib.ef_image_grayscale.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_uint8)]  # fmt: skip
        self.decode = zxing_decoder()
        self.calls = 0
        self.errors: list[BaseException] = []
        self._callback = DECODER(self._answer)  # kept alive as long as the library uses it
        lib.host_qr_set_decoder(self._callback)

    def _answer(self, gray: object, width: int, height: int, out: int, cap: int) -> int:
        self.calls += 1
        try:
            frame = np.ctypeslib.as_array(gray, shape=(height, width)).copy()
            data = self.decode(frame)
            if data is None:
                return NO_CODE
            if len(data) + 1 > cap:
                ctypes.memset(out, 0, 1)
                return TOO_LONG
            ctypes.memmove(out, data + b"\0", len(data) + 1)
            return len(data)
        except Exception as err:  # an exception cannot cross into C: recorded, reported as a decoder error
            self.errors.append(err)
            return DECODER_ERROR

    def config(
        self, confirmations: int = 2, timeout_ms: int = 300_000, passphrase: int = 0, url: int = 0
    ) -> QrConfig:
        return QrConfig(confirmations, timeout_ms, passphrase, url)

    def session(self, config: QrConfig | None = None, now_ms: int = 0) -> tuple[int, QrProvision]:
        s = QrProvision()
        rc = self.lib.ef_qr_provision_init(ctypes.byref(s), ctypes.byref(config or self.config()), now_ms)
        return int(rc), s

    def frame(self, s: QrProvision, gray: np.ndarray, now_ms: int = 0) -> int:
        data = np.ascontiguousarray(gray, dtype=np.uint8)
        height, width = data.shape
        ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        return int(self.lib.ef_qr_provision_frame(ctypes.byref(s), ptr, width, height, now_ms))

    def text(self, s: QrProvision, text: bytes | None, now_ms: int = 0, code: int | None = None) -> int:
        length = len(text) if text is not None else (NO_CODE if code is None else code)
        return int(self.lib.ef_qr_provision_text(ctypes.byref(s), text, length, now_ms))

    def grayscale(self, frame: np.ndarray, fmt: int) -> np.ndarray:
        """The frame through ef_image's grayscale path, planned as the chip plans QR frames (1 x 1 output)."""
        height, width = frame.shape[:2]
        size = int(self.lib.ef_image_workspace_bytes(width, height, 1, 1))
        workspace, plan = (ctypes.c_int32 * (size // 4 + 1))(), Plan()
        rc = self.lib.ef_image_plan(ctypes.byref(plan), width, height, fmt, 1, 1, workspace, size)
        assert rc == 0, rc
        data = np.ascontiguousarray(frame, dtype=np.uint8)
        gray = np.zeros((height, width), np.uint8)
        u8p = ctypes.POINTER(ctypes.c_uint8)
        rc = self.lib.ef_image_grayscale(
            ctypes.byref(plan), data.ctypes.data_as(u8p), data.nbytes, gray.ctypes.data_as(u8p)
        )
        return gray if rc == 0 else np.array([rc])


@dataclass(frozen=True)
class Shot:
    """How the camera sees the code: pixels per module, tilt, focus blur (px), sensor noise (std)."""

    module_px: float
    angle: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    offset: tuple[int, int] = (0, 0)


def camera_scene(code_png: Path, shot: Shot, size: tuple[int, int] = QVGA, seed: int = 0) -> np.ndarray:
    """A grayscale frame: the rendered code (8 px per module) scaled, rotated and pasted on an unevenly
    lit background, then blurred and noised. Returns (height, width) uint8."""
    width, height = size
    code = Image.open(code_png).convert("L")
    side = max(1, round(code.width * shot.module_px / 8))
    code = code.resize((side, side), Image.Resampling.BILINEAR)
    code = code.rotate(shot.angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=235)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    background = (110 + 60 * x + 25 * y).astype(np.uint8)  # light from one side
    scene = Image.fromarray(background)
    left = (width - code.width) // 2 + shot.offset[0]
    top = (height - code.height) // 2 + shot.offset[1]
    scene.paste(code, (left, top))
    if shot.blur:
        scene = scene.filter(ImageFilter.GaussianBlur(shot.blur))
    pixels = np.asarray(scene, dtype=np.float64)
    pixels = pixels * (0.75 + 0.25 * x)  # vignetting-like falloff
    if shot.noise:
        pixels = pixels + np.random.default_rng(seed).normal(0.0, shot.noise, pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def camera_bytes(gray: np.ndarray, fmt: int) -> np.ndarray:
    """The scene as esp32-camera delivers it in `fmt`: colour frames get three different channels."""
    if fmt == GRAYSCALE:
        return gray
    g = gray.astype(np.float32)
    rgb = np.clip(np.rint(np.stack([g * 0.9 + 12, g, g * 0.8 + 20], axis=-1)), 0, 255).astype(np.uint8)
    return rgb565_bytes(rgb) if fmt == RGB565 else np.ascontiguousarray(rgb[..., ::-1])  # RGB888 is B, G, R


FORMATS = {"grayscale": GRAYSCALE, "rgb565": RGB565, "rgb888": RGB888}
