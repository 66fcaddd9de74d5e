"""Self-test vectors: int8 inputs and the outputs the TFLM interpreter gives for them.

A device runs these cases on a new model before it switches to it (see docs/model-lifecycle.md);
the expected outputs come from the tflite-micro kernels, the firmware's truth, so a device whose
model or kernels differ by more than `tolerance` quantization steps refuses the update.
Anomaly models get standardized feature vectors near the training distribution (z ~ N(0, 1),
quantized with the card's input quantization), the first one the training mean itself; other
models get uniform random int8 inputs. The same model and seed always give the same cases.
"""

import json
import logging
import math
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from edgefleet.contracts import ContractError, ModelCard, SelfTestCase, load_model_card
from edgefleet.dsp import quantize
from edgefleet.ml.errors import ExportError
from edgefleet.ml.runtime import TflmModel

log = logging.getLogger(__name__)
SELF_TEST_FILE: Final = "self_test.json"
MAX_CASES: Final = 8
MAX_INPUTS: Final = 9216
MAX_OUTPUTS: Final = 64
TOLERANCE: Final = 1
_MIN_ARENA: Final = 256 * 1024
_Z_LIMIT: Final = 3.0


def make_self_test(model_dir: Path, n_cases: int = 4, seed: int = 0) -> list[SelfTestCase]:
    """`n_cases` (1 to 8) deterministic cases for the model in `model_dir` (model.tflite + card)."""
    if not 1 <= n_cases <= MAX_CASES:
        raise ExportError(f"n_cases must be 1 to {MAX_CASES}, not {n_cases}")
    card, model = _read(model_dir)
    if card.input.dtype != "int8" or card.output.dtype != "int8":
        raise ExportError("self-test cases need a model with int8 input and output")
    n_in, n_out = math.prod(card.input.shape), math.prod(card.output.shape)
    if n_in > MAX_INPUTS or n_out > MAX_OUTPUTS:
        raise ExportError(
            f"the model has {n_in} inputs and {n_out} outputs; self-test cases hold at most "
            f"{MAX_INPUTS} and {MAX_OUTPUTS}"
        )
    inputs = _inputs(card, n_cases, n_in, np.random.default_rng(seed))
    runner = TflmModel(model, arena_size=max(_MIN_ARENA, 2 * card.arena_bytes))
    outputs = runner.run(inputs.reshape(n_cases, *card.input.shape[1:]))
    expected = np.asarray(outputs).reshape(n_cases, -1)
    if expected.dtype != np.int8 or expected.shape[1] != n_out:
        raise ExportError(
            f"the model gave {expected.dtype} outputs of {expected.shape[1]}, not int8 of {n_out}"
        )
    return [
        SelfTestCase(input_int8=[int(v) for v in x], expected_int8=[int(v) for v in y], tolerance=TOLERANCE)
        for x, y in zip(inputs, expected, strict=True)
    ]


def _read(model_dir: Path) -> tuple[ModelCard, bytes]:
    try:
        card = load_model_card(model_dir / "model_card.json")
        model = (model_dir / "model.tflite").read_bytes()
    except ContractError as err:
        raise ExportError(str(err)) from err
    except OSError as err:
        raise ExportError(f"cannot read {model_dir / 'model.tflite'}: {err.strerror}") from err
    return card, model


def _inputs(card: ModelCard, n_cases: int, n_in: int, rng: np.random.Generator) -> NDArray[np.int8]:
    q = card.input.quantization
    if card.feature_spec is not None and q is not None:
        z = np.clip(rng.standard_normal((n_cases, n_in)), -_Z_LIMIT, _Z_LIMIT)
        z[0] = 0.0  # the training mean
        return quantize(z, q.scale, q.zero_point)
    return rng.integers(-128, 128, size=(n_cases, n_in), dtype=np.int8)


def write_self_test(model_dir: Path, cases: list[SelfTestCase]) -> Path:
    """Write `model_dir/self_test.json`: a JSON list of SelfTestCase objects."""
    path = model_dir / SELF_TEST_FILE
    text = json.dumps([case.model_dump(mode="json") for case in cases], separators=(",", ":")) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ExportError(f"cannot write {path}: {err.strerror}") from err
    log.info("wrote %d self-test cases to %s", len(cases), path)
    return path


def load_self_test(path: Path) -> list[SelfTestCase]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ExportError(f"{path} must hold a JSON list of self-test cases")
        return [SelfTestCase.model_validate(item) for item in raw]
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot read self-test cases from {path}: {err}") from err
