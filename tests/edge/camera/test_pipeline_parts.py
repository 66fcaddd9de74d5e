from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefleet.contracts import TensorSpec
from edgefleet.dsp.image import crop_resize, pixels_to_int8, to_gray
from edgefleet.edge.camera import (
    DetectionConfig,
    FolderSource,
    ListSource,
    PresenceTracker,
    VideoSource,
    check_camera_model_input,
)
from edgefleet.edge.errors import ModelLoadError, SourceError


def test_pixels_map_to_int8_as_the_firmware_xor() -> None:
    pixels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(pixels_to_int8(pixels).view(np.uint8), pixels ^ 0x80)


def test_gray_matches_pillow_luma() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(to_gray(rgb).astype(int) - pillow).max() <= 1
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((2, 2, 2), dtype=np.uint8))


def test_crop_keeps_the_centre() -> None:
    frame = np.zeros((100, 200), dtype=np.uint8)
    frame[:, 50:150] = 255  # the centre square is white, the sides black
    out = crop_resize(frame, 96, 96)
    assert out.shape == (96, 96) and out.min() > 200


def _spec(
    shape: list[int], scale: float = 1 / 127.5, zero_point: int = -1, dtype: str = "int8"
) -> TensorSpec:
    return TensorSpec.model_validate(
        {"shape": shape, "dtype": dtype, "quantization": {"scale": scale, "zero_point": zero_point}}
    )


def test_camera_model_input_checks() -> None:
    assert check_camera_model_input(_spec([1, 96, 96, 1])) == (96, 96)
    with pytest.raises(ModelLoadError, match=r"\[1, H, W, 1\]"):
        check_camera_model_input(_spec([1, 96, 96, 3]))
    with pytest.raises(ModelLoadError, match="p - 128"):
        check_camera_model_input(_spec([1, 96, 96, 1], scale=1 / 255, zero_point=-128))


def test_hysteresis_and_smoothing() -> None:
    tracker = PresenceTracker(DetectionConfig(threshold_on=0.6, threshold_off=0.4, smoothing=0.5))
    assert tracker.update(0.0) is None
    assert tracker.update(1.0) is None  # one frame: smoothed 0.5, below 0.6
    assert tracker.update(1.0) == "raised"
    assert [tracker.update(s) for s in (0.45, 0.5, 0.45, 0.5)] == [None] * 4  # flicker inside the band
    assert tracker.smoothed == pytest.approx(0.5)
    assert tracker.update(0.0) == "cleared"  # smoothed 0.25, below 0.4
    assert tracker.update(0.0) is None
    with pytest.raises(ValueError, match="threshold_off < threshold_on"):
        DetectionConfig(threshold_on=0.3, threshold_off=0.5)


def test_folder_source_reads_in_order_and_counts_unreadable(tmp_path: Path) -> None:
    for i, value in enumerate((10, 20, 30)):
        Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(tmp_path / f"f{i}.png")
    (tmp_path / "f1b.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    source = FolderSource(tmp_path, fps=5)
    assert [int(f.mean()) for f in source.frames()] == [10, 20, 30]
    assert source.skipped == 1


def test_folder_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(tmp_path / "missing")
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path)
    with pytest.raises(SourceError, match="frame rate"):
        ListSource([], fps=0)


def test_video_source_samples_at_the_configured_rate(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):  # 3 s at 10 frames/s, brightness rising
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = list(VideoSource(path, fps=2).frames())
    assert len(frames) == 6 and frames[0].shape == (48, 64)
    brightness = [float(f.mean()) for f in frames]
    assert brightness == sorted(brightness)


def test_bad_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match=r"bad\.mp4"):
        list(VideoSource(bad).frames())
    with pytest.raises(SourceError, match="does not exist"):
        VideoSource(tmp_path / "none.mp4")
