"""Model directories and the tflm backend (the firmware's kernels) with its fixed arena."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.edge.backends import create_backend
from edgefleet.edge.errors import BackendError, ModelLoadError
from edgefleet.edge.model import ModelBundle, load_model_dir
from tests.edge.conftest import synth_windows


def test_loads_the_model_and_its_card(model_dir: Path) -> None:
    bundle = load_model_dir(model_dir)
    assert bundle.is_anomaly_model
    backend = create_backend("tflm", bundle)
    assert backend.arena_bytes == bundle.card.arena_bytes
    out = backend.invoke(np.zeros(18, dtype=np.int8))
    assert out.shape == (18,) and out.dtype == np.int8


def test_tflm_agrees_with_litert_reference_kernels(model_dir: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    bundle = load_model_dir(model_dir)
    tflm = create_backend("tflm", bundle)
    lite = Interpreter(model_content=bundle.tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    card = bundle.card
    assert card.feature_spec is not None and card.input.quantization is not None
    cfg = dsp.FeatureConfig.from_spec(200.0, tuple(dsp.AXES), ("stats",))
    z = dsp.standardize(
        dsp.extract(synth_windows(300, seed=4), cfg), card.feature_spec.mean, card.feature_spec.std
    )
    x = dsp.quantize(z, card.input.quantization.scale, card.input.quantization.zero_point)
    ours = tflm.invoke_batch(x).astype(int)
    theirs = []
    for row in x:
        lite.set_tensor(lite.get_input_details()[0]["index"], row[None])
        lite.invoke()
        theirs.append(lite.get_tensor(lite.get_output_details()[0]["index"])[0])
    diff = np.abs(ours - np.asarray(theirs, dtype=int))
    # They round differently in places, and through four layers a one-step difference can grow:
    # nearly every output is within one step, none is far off, and the scores agree.
    assert (diff <= 1).mean() > 0.99
    assert diff.max() <= 4
    q = card.output.quantization
    assert q is not None
    s_ours = dsp.reconstruction_score(z, dsp.dequantize(ours.astype(np.int8), q.scale, q.zero_point))
    s_theirs = dsp.reconstruction_score(z, dsp.dequantize(np.asarray(theirs), q.scale, q.zero_point))
    np.testing.assert_allclose(s_ours, s_theirs, rtol=0.05, atol=1e-3)


def test_too_small_an_arena_is_a_clear_error(model_dir: Path) -> None:
    bundle = load_model_dir(model_dir)
    with pytest.raises(ModelLoadError, match="arena"):
        create_backend("tflm", bundle, arena_bytes=bundle.card.arena_bytes // 4)


def test_unknown_backend(model_dir: Path) -> None:
    with pytest.raises(BackendError, match="unknown inference backend"):
        create_backend("cuda", load_model_dir(model_dir))


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _edit_card(directory: Path, **changes: object) -> None:
    card = json.loads((directory / "model_card.json").read_text())
    card.update(changes)
    (directory / "model_card.json").write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "model_card.json").unlink(), "cannot read model card"),
        (lambda d: (d / "model.tflite").unlink(), "cannot read"),
        (lambda d: (d / "model.tflite").write_bytes(b"not a model at all"), "not a TFLite flatbuffer"),
        (lambda d: (d / "model_card.json").write_text("{", encoding="utf-8"), "invalid model card"),
        (lambda d: _truncate(d / "model.tflite", 900), "truncated or corrupt"),
        (lambda d: _edit_card(d, flash_bytes=1), "flash_bytes is 1; the model file has"),
        (
            lambda d: _edit_card(
                d, input={"shape": [1, 3], "dtype": "int8", "quantization": {"scale": 1.0, "zero_point": 0}}
            ),
            "input shape",
        ),
    ],
)
def test_broken_model_directories_name_the_file(
    model_dir: Path, tmp_path: Path, breakage: object, message: str
) -> None:
    target = tmp_path / "m"
    shutil.copytree(model_dir, target)
    assert callable(breakage)
    breakage(target)
    with pytest.raises(ModelLoadError, match=message):
        load_model_dir(target)


def test_float_models_are_refused(model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    shutil.copytree(model_dir, target)
    card = json.loads((target / "model_card.json").read_text())
    card["input"]["dtype"] = "float32"
    (target / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="int8"):
        load_model_dir(target)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_dir(tmp_path / "nowhere")


def test_int8ref_is_bit_exact_with_tflm(model_dir: Path) -> None:
    bundle = load_model_dir(model_dir)
    tflm, ref = create_backend("tflm", bundle), create_backend("int8ref", bundle)
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.integers(-128, 128, size=(2000, 18)),
            np.full((1, 18), -128),
            np.full((1, 18), 127),
        ]
    ).astype(np.int8)
    np.testing.assert_array_equal(ref.invoke_batch(x), tflm.invoke_batch(x))
    np.testing.assert_array_equal(ref.invoke(x[0]), tflm.invoke(x[0]))


def test_quantize_multiplier_matches_tflite() -> None:
    from edgefleet.edge.backends.int8ref import multiply_by_quantized_multiplier, quantize_multiplier

    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    q, shift = quantize_multiplier(0.0123)
    assert q / (1 << 31) * 2.0**shift == pytest.approx(0.0123, rel=1e-9)
    acc = np.array([1000, -1000, 3, -3, 0], dtype=np.int64)
    q_arr, s_arr = np.full(5, q, dtype=np.int64), np.full(5, shift, dtype=np.int64)
    got = multiply_by_quantized_multiplier(acc, q_arr, s_arr)
    np.testing.assert_array_equal(got, [12, -12, 0, 0, 0])  # rounds half away from zero: 12.3 -> 12


@pytest.mark.needs("shared")
def test_int8ref_refuses_models_it_cannot_run(model_dir: Path, shared: Path) -> None:
    conv = (shared / "models/person_detect/person_detect.tflite").read_bytes()
    bundle = ModelBundle(model_dir, load_model_dir(model_dir).card, conv)
    with pytest.raises(BackendError, match="FULLY_CONNECTED only"):
        create_backend("int8ref", bundle)
