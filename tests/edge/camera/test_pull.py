from pathlib import Path

import pytest

from edgefleet.ml.errors import ExportError
from edgefleet.ml.pretrained import pull


def test_unknown_model_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown model 'yolo'"):
        pull("yolo", tmp_path)
    with pytest.raises(ExportError, match="does not exist"):
        pull("person-detect", tmp_path, from_path=tmp_path / "nope.tflite")


def test_a_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "person_detect.tflite"
    fake.write_bytes(b"TFL3" * 100)
    with pytest.raises(ExportError, match="does not match the pinned"):
        pull("person-detect", tmp_path / "cache", from_path=fake)
    assert not (tmp_path / "cache" / "person-detect" / "model.tflite").exists()


@pytest.mark.needs("shared")
def test_a_tampered_copy_is_refused(shared: Path, tmp_path: Path) -> None:
    data = bytearray((shared / "models/person_detect/person_detect.tflite").read_bytes())
    data[5000] ^= 0xFF
    tampered = tmp_path / "tampered.tflite"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="refusing"):
        pull("person-detect", tmp_path / "cache", from_path=tampered)


def test_download_failure_says_to_use_a_local_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgefleet.ml import pretrained

    entry = pretrained.CATALOG["person-detect"]
    # A closed local port: the download fails at once, with no traffic leaving the machine.
    local = type(entry)(**{**entry.__dict__, "url": "http://127.0.0.1:9/person_detect.tflite"})
    monkeypatch.setitem(pretrained.CATALOG, "person-detect", local)
    with pytest.raises(ExportError, match="--from PATH"):
        pull("person-detect", tmp_path, timeout_s=2)
