"""Load an exported model directory: `model.tflite` + `model_card.json` (contracts.ModelCard)."""

from dataclasses import dataclass
from pathlib import Path

from edgefleet.contracts import ContractError, ModelCard, PackageError, load_model_card
from edgefleet.contracts.model_file import card_mismatches, inspect_tflite
from edgefleet.edge.errors import ModelLoadError

MODEL_FILE = "model.tflite"
CARD_FILE = "model_card.json"


@dataclass(frozen=True)
class ModelBundle:
    directory: Path
    card: ModelCard
    tflite: bytes

    @property
    def is_anomaly_model(self) -> bool:
        return self.card.task == "anomaly_detection"


def load_model_dir(directory: Path) -> ModelBundle:
    """Read and check a model directory; errors name the file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    try:
        card = load_model_card(directory / CARD_FILE)
    except ContractError as err:
        raise ModelLoadError(str(err)) from err
    path = directory / MODEL_FILE
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelLoadError(f"cannot read {path}: {err.strerror}") from err
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
    if card.input.dtype != "int8" or card.output.dtype != "int8":
        raise ModelLoadError(
            f"{directory / CARD_FILE}: the device runs int8 models; card says "
            f"input {card.input.dtype}, output {card.output.dtype}"
        )
    if card.input.quantization is None or card.output.quantization is None:
        raise ModelLoadError(f"{directory / CARD_FILE}: int8 input and output need `quantization`")
    try:
        problems = card_mismatches(card, inspect_tflite(data))
    except PackageError as err:
        raise ModelLoadError(f"{path}: {err}") from err
    if problems:
        raise ModelLoadError(f"{directory / CARD_FILE} does not describe {path}: {'; '.join(problems)}")
    return ModelBundle(directory, card, data)
