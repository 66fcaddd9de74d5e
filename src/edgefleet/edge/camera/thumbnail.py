"""Small JPEG thumbnails for person events, capped in size so the event fits the payload limit."""

import base64
import io

import numpy as np

from edgefleet.contracts import MAX_THUMBNAIL_B64_CHARS

_QUALITIES = (80, 65, 50, 35, 20)


def jpeg_thumbnail(
    frame: np.ndarray, max_side: int = 160, max_b64_chars: int = MAX_THUMBNAIL_B64_CHARS
) -> str | None:
    """Base64 JPEG of the frame, shrunk and recompressed until it fits; None if it never does."""
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((max_side, max_side))
    for quality in _QUALITIES:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        text = base64.b64encode(buffer.getvalue()).decode()
        if len(text) <= max_b64_chars:
            return text
    return None
