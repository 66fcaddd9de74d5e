"""Reference models fetched by URL with a pinned sha256 (or taken from a local path), with a model card.

`pull("person-detect", cache)` writes `cache/person-detect/model.tflite` and `model_card.json`
(ops read from the model, arena measured in the tflite-micro interpreter, flash = file size).
"""

import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgefleet.contracts import ModelCard, ThresholdSpec, dump_model_card
from edgefleet.ml.errors import ExportError
from edgefleet.ml.runtime import measure_arena
from edgefleet.ml.tflite_info import io_specs, read_ops

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    url: str
    sha256: str
    size: int
    version: str
    task: str
    device_kind: str
    labels: tuple[str, ...]
    description: str
    threshold: float


CATALOG: dict[str, PretrainedModel] = {
    "person-detect": PretrainedModel(
        name="person-detect",
        url="https://raw.githubusercontent.com/tensorflow/tflite-micro/main/tensorflow/lite/micro/models/person_detect.tflite",
        sha256="808cfdfc0cf3a6fa6f6fa26bfa379ea97c16d5db7334637766e39c3408502e9d",
        size=300_568,
        version="tflm-90b983c2",
        task="person_detection",
        device_kind="camera",
        labels=("no_person", "person"),
        description="TensorFlow Lite Micro person_detection (Visual Wake Words), int8, Apache-2.0",
        threshold=0.6,
    ),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, progress: Progress | None, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(_CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as err:
        raise ExportError(f"cannot download {url}: {err}; use --from PATH with a local copy") from err


def model_card_for(entry: PretrainedModel, model: bytes) -> ModelCard:
    arena = measure_arena(model)
    inp, out = io_specs(model, arena)
    return ModelCard(
        model_id=entry.name,
        model_version=entry.version,
        task=entry.task,  # type: ignore[arg-type]
        device_kind=entry.device_kind,  # type: ignore[arg-type]
        created=datetime.now(UTC),
        description=entry.description,
        input=inp,
        output=out,
        labels=list(entry.labels),
        threshold=ThresholdSpec(value=entry.threshold, policy="fixed"),
        ops=read_ops(model),
        flash_bytes=len(model),
        arena_bytes=arena,
        training_data_sha256=None,
    )


def pull(
    name: str,
    cache_dir: Path,
    from_path: Path | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Fetch (or copy) a catalogued model, check its sha256, write its model card; returns its directory."""
    if name not in CATALOG:
        raise ExportError(f"unknown model {name!r}; available: {', '.join(CATALOG)}")
    entry = CATALOG[name]
    target_dir = cache_dir / name
    model_path, card_path = target_dir / "model.tflite", target_dir / "model_card.json"
    if (
        model_path.exists()
        and card_path.exists()
        and _sha256(model_path) == entry.sha256
        and from_path is None
    ):
        log.info("%s already in %s", name, target_dir)
        return target_dir
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.tflite"
        if from_path is not None:
            if not from_path.is_file():
                raise ExportError(f"{from_path} does not exist")
            shutil.copyfile(from_path, staged)
        else:
            _download(entry.url, staged, progress, timeout_s)
        actual = _sha256(staged)
        if actual != entry.sha256:
            source = from_path or entry.url
            raise ExportError(
                f"{source}: sha256 {actual} does not match the pinned {entry.sha256}; refusing it"
            )
        model = staged.read_bytes()
        card = model_card_for(entry, model)
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, model_path)
    card_path.write_text(dump_model_card(card), encoding="utf-8")
    return target_dir
