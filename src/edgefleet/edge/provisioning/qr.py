"""Render provisioning codes (segno) and find them in camera frames (zxing-cpp)."""

from pathlib import Path

import numpy as np


def render_qr(text: str, out_dir: Path, stem: str = "provisioning", scale: int = 8) -> tuple[Path, Path]:
    """Write `<stem>.png` and `<stem>.svg`; error correction M survives a tilted, blurry camera. The
    bytes are UTF-8 (segno would pick ISO 8859-1 or Shift JIS where they fit, which a device that
    takes the code's raw bytes as UTF-8, as the firmware does, refuses)."""
    import segno

    out_dir.mkdir(parents=True, exist_ok=True)
    code = segno.make_qr(text, error="m", encoding="utf-8")
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    code.save(str(png), scale=scale, border=4)
    code.save(str(svg), scale=scale, border=4)
    return png, svg


def scan_frame(gray: np.ndarray) -> list[str]:
    """Texts of all QR codes found in a grayscale (H, W) uint8 frame."""
    import zxingcpp

    frame = np.ascontiguousarray(gray, dtype=np.uint8)
    results = zxingcpp.read_barcodes(frame)
    return [r.text for r in results if r.valid and r.format == zxingcpp.BarcodeFormat.QRCode]
