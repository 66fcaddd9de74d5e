"""The model card reader on the chip (main/ef_card.c). A model update whose card changes the
standardization, quantization and threshold (a retrained model) is read by C exactly as Python
reads it and scored with it: the firmware's int8 inputs and outputs and its decisions equal the
Python runtime's loaded with that card. A card the firmware image cannot run is refused before the
switch, with the Python agent's reason where Python refuses it too (fuzzing: test_card_fuzz_c.py)."""

import base64
import ctypes
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import (
    Channel,
    ModelCard,
    OtaCommand,
    OtaState,
    SelfTestCase,
    decode_topic,
    load_model_card,
    topic_for,
)
from edgefleet.edge.config import TrustedKey
from edgefleet.edge.ota.errors import VerificationError
from edgefleet.edge.ota.verify import DeviceProfile, verify_package
from edgefleet.ml.runtime import TflmModel
from edgefleet.ml.selftest import SELF_TEST_FILE, load_self_test
from tests.ml.firmware import ota_device
from tests.ml.firmware.card_c import OK, Firmware, card_text, raw_package
from tests.ml.firmware.cbind import Core, Header, needs_cc
from tests.ml.firmware.conftest import train_tiny
from tests.ml.firmware.ota_c import FACTORY, RELOAD, Config, Key, Server, Storage, parse_cmd
from tests.ml.firmware.ota_kit import DEVICE, URL, Signer, command, manifest
from tests.support.tiny_tflite import INPUT_QUANT, OUTPUT_QUANT, tiny_fc_model

pytestmark = needs_cc
SCHEMA_TEXT = "bad_package: model_card.json does not match the model card schema"
NEW_IMAGE = "a new firmware image is needed"


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same machine and features, another recording, the real pipeline: a model update."""
    training = {"epochs": 6, "batch_size": 64, "learning_rate": 0.01, "patience": 3}
    return train_tiny(
        tmp_path_factory.mktemp("retrained"), synth_seed=11, model_version="1.1.0", training=training
    )


def float32_bits(values: Any) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ reading a card
def test_a_retrained_card_is_read_as_python_reads_it_and_the_core_scores_with_it(
    card_fw: Firmware, retrained: Path
) -> None:
    text = (retrained / "model_card.json").read_bytes()
    py, factory = ModelCard.model_validate_json(text), ModelCard.model_validate_json(card_text(card_fw.card))
    fs, qin, qout = py.feature_spec, py.input.quantization, py.output.quantization
    assert fs is not None and qin is not None and qout is not None and py.threshold is not None
    # the update changes what the firmware used to compile in: else this test proves nothing
    assert factory.feature_spec is not None and factory.threshold is not None
    assert fs.mean != factory.feature_spec.mean and fs.std != factory.feature_spec.std
    assert py.threshold.value != factory.threshold.value and qin != factory.input.quantization
    rc, reason, card = card_fw.cards.read(text)
    assert rc == OK and reason == "", reason
    assert (card.model_id.decode(), card.model_version.decode()) == (py.model_id, "1.1.0")
    assert list(card.mean) == fs.mean and list(card.std) == fs.std  # the same doubles
    assert float32_bits(card.mean_f) == float32_bits(fs.mean) and float32_bits(card.std_f) == float32_bits(
        fs.std
    )
    assert (card.input_scale, card.input_zero_point) == (qin.scale, qin.zero_point)
    assert (card.output_scale, card.output_zero_point) == (qout.scale, qout.zero_point)
    assert card.threshold == py.threshold.value
    percentile = py.threshold.percentile
    assert percentile is not None and card.target_far == 1.0 - percentile / 100.0  # as DeviceCore reads it
    assert card.n_fault_probes == len(py.fault_probes) > 0
    assert all(list(card.fault_probes[i]) == p.features for i, p in enumerate(py.fault_probes))

    core = Core(Path(card_fw.cards.lib._name), fs.window, len(card_fw.card["sensor"]["axes"]), len(fs.names))
    x = np.asarray([p.features for p in py.fault_probes] + [fs.mean], dtype=np.float32)
    try:
        card_fw.cards.use(card)
        z = np.asarray([core.standardize(row) for row in x])
        assert float32_bits(z) == float32_bits(dsp.standardize(x, fs.mean, fs.std))
        q = np.asarray([core.quantize(row) for row in z])
        assert np.array_equal(q, dsp.quantize(z, qin.scale, qin.zero_point))
        q_out = np.asarray(TflmModel((retrained / "model.tflite").read_bytes()).run(q), dtype=np.int8)
        y = dsp.dequantize(q_out, qout.scale, qout.zero_point)
        expected = dsp.reconstruction_score(z, y)
        scores = [core.score(zi, qi) for zi, qi in zip(z, q_out, strict=True)]
        assert np.allclose(scores, expected, rtol=1e-6, atol=0)
        assert core.decider().threshold == py.threshold.value
        n, status = core.format(
            "status", Header(b"press-7", 1, b"2026-12-01T10:00:00.000Z", 1), 1, b"running"
        )
        assert n > 0 and json.loads(status)["model_version"] == "1.1.0"
    finally:
        card_fw.cards.use(None)
    assert core.decider().threshold == factory.threshold.value  # no card: the factory's again
    assert float32_bits(core.standardize(x[0])) != float32_bits(z[0])


# ------------------------------------------------------------------------------ the host harness
@pytest.mark.needs("tflm_host")
@pytest.mark.slow
def test_the_firmware_runs_a_model_update_with_its_card_as_python_does(
    card_fw: Firmware, retrained: Path, tmp_path: Path
) -> None:
    from edgefleet.ml.firmware.hostbuild import HostBuildError, build_vibration_harness, run_harness
    from tests.ml.firmware import hostparity

    harness = build_vibration_harness(card_fw.project, tmp_path / "harness")
    windows = hostparity.synthetic_windows(128, 64)
    update = ["--card", str(retrained / "model_card.json"), "--model", str(retrained / "model.tflite")]
    info = run_harness(harness, [*update, "info"])[0]
    assert info["init"] == 0 and info["model_id"] == "tiny-synth"
    assert info["threshold"] == json.loads((retrained / "model_card.json").read_text())["threshold"]["value"]
    # the card's part of the chain is exact: C's own features, standardized and quantized with the
    # update's card by Python, are C's int8 inputs to the bit (0 steps on every scored window)
    card = load_model_card(retrained / "model_card.json")
    fs, qin = card.feature_spec, card.input.quantization
    assert fs is not None and qin is not None
    scored = [
        r for r in hostparity.harness_windows(harness, windows, tmp_path, package=update) if "q_in" in r
    ]
    features = np.asarray([r["features"] for r in scored], dtype=np.float32)
    z = dsp.standardize(features, fs.mean, fs.std)
    assert float32_bits([r["z"] for r in scored]) == float32_bits(z)
    assert np.array_equal(np.asarray([r["q_in"] for r in scored]), dsp.quantize(z, qin.scale, qin.zero_point))
    between = hostparity.separating_threshold(harness, windows, tmp_path, update)
    for threshold in (None, between):
        report = hostparity.check_vibration(retrained, harness, windows, tmp_path, threshold, package=update)
        assert report.self_test_cases >= 1 and report.self_test_max_steps == 0
        assert report.scored == len(scored) and report.output_max_steps == 0, "int8 outputs differ"
        # against numpy's features (not C's): a float feature on a rounding boundary moves an input by
        # one step (3 of 332 windows with this card; the card's own part is exact, above)
        assert report.input_max_steps <= 1 and report.inputs_differing <= report.scored // 50, report
        assert report.mismatches == [] and report.decisions_equal, report.mismatches
    assert report.events.get("anomaly raised", 0) >= 1 and report.events.get("anomaly cleared", 0) >= 1
    # the gap this closes: the new model scored with the compiled (factory) card's constants
    stale = hostparity.check_vibration(retrained, harness, windows, tmp_path, package=update[2:])
    assert (
        stale.input_max_steps > 10
        and stale.inputs_differing > stale.scored // 2
        and not stale.decisions_equal
    )
    wider = {**json.loads((retrained / "model_card.json").read_text())}
    wider["feature_spec"] = {**wider["feature_spec"], "window": 256}
    (tmp_path / "wider.json").write_bytes(card_text(wider))
    with pytest.raises(HostBuildError, match=r"(?s)exited 4:.*refused: incompatible:features"):
        run_harness(harness, ["--card", str(tmp_path / "wider.json"), "info"])


# ------------------------------------------------------------------------------ refusals
def synth_config(card_fw: Firmware, signer: Signer, keep: list[Any]) -> Config:
    """ef_ota_config_t as app_main.cc fills it (check_card: ef_card_ota_check)."""
    axes, units = card_fw.card["sensor"]["axes"], card_fw.card["sensor"]["units"]
    c_axes = (ctypes.c_char_p * len(axes))(*[a.encode() for a in axes])
    c_units = (ctypes.c_char_p * len(units))(*[u.encode() for u in units])
    keep.extend([c_axes, c_units])
    keys = (Key * 4)(Key(signer.key_id.encode(), (ctypes.c_uint8 * 32)(*signer.raw)))
    return Config(
        DEVICE.encode(), keys, 1, b"vibration", b"anomaly_detection", c_axes, c_units, len(axes), 200.0,
        card_fw.runtime.encode(), card_fw.arena, b"tiny-synth", b"1.0.0", 1, 0, 1, 3, 30000, 10, 80, 1,
        card_fw.cards.check_card, None,
    )  # fmt: skip


def python_verify(card_fw: Firmware, signer: Signer, data: bytes, payload: bytes) -> str:
    """What the Python agent's verify_package says on a device like this firmware's."""
    message = decode_topic(topic_for(DEVICE, Channel.OTA_CMD), payload)[1]
    assert isinstance(message, OtaCommand) and message.manifest is not None
    sensor = card_fw.card["sensor"]
    axes, units = tuple(sensor["axes"]), tuple(sensor["units"])
    profile = DeviceProfile("vibration", axes, units, 200.0, card_fw.runtime, arena_bytes=card_fw.arena)
    trusted = [TrustedKey(key_id=signer.key_id, public_key=base64.b64encode(signer.raw).decode())]
    try:
        verify_package(data, message.manifest, trusted, profile, running=("tiny-synth", "1.0.0"))
    except VerificationError as err:
        return err.report
    return "ok"


def dsp_names(card: dict[str, Any]) -> list[str]:
    fs = card["feature_spec"]
    config = dsp.FeatureConfig.from_spec(
        fs["sample_rate_hz"], card["sensor"]["axes"], fs["sets"], fs["bands_hz"]
    )
    return dsp.feature_names(config)


def stats_only(card: dict[str, Any]) -> None:
    """Another feature set (stats only: 36 features), with a model of that size."""
    fs = card["feature_spec"]
    fs.update(sets=["stats"], bands_hz=[])
    n = len(dsp_names(card))
    fs.update(names=dsp_names(card), mean=[0.0] * n, std=[1.0] * n)
    for key, (scale, zp) in (("input", INPUT_QUANT), ("output", OUTPUT_QUANT)):
        card[key] = {"shape": [1, n], "dtype": "int8", "quantization": {"scale": scale, "zero_point": zp}}
    card.update(fault_probes=[], flash_bytes=len(tiny_fc_model(n)), arena_bytes=2048)


def other_bands(card: dict[str, Any]) -> None:
    card["feature_spec"]["bands_hz"][0] = [2.0, 11.0]
    card["feature_spec"]["names"] = dsp_names(card)  # consistent: Python's Scorer takes it


Mutation = Callable[[dict[str, Any]], object]
# case -> (change to the retrained card, how the two sides answer):
#   "same": both refuse with the same text; "ok": both accept; "schema": both refuse as bad_package;
#   "<code>": Python accepts, the chip refuses with this code (its image fixed what the card changes)
CASES: dict[str, tuple[Mutation, str]] = {
    "retrained": (lambda c: None, "ok"),
    "kind": (lambda c: c.update(device_kind="camera"), "same"),
    "task": (lambda c: c.update(task="classification"), "same"),
    "axes": (lambda c: c["sensor"]["axes"].__setitem__(5, "gq"), "same"),
    "units": (lambda c: c["sensor"].update(units=["m_s2"] * 3 + c["sensor"]["units"][3:]), "same"),
    "rate": (lambda c: c["feature_spec"].update(sample_rate_hz=400.0), "same"),
    "runtime": (lambda c: c.update(min_runtime_version="9.0"), "same"),
    "dtype": (lambda c: c["input"].update(dtype="float32"), "same"),
    "quantization": (lambda c: c["output"].update(quantization=None), "same"),
    "arena": (lambda c: c.update(arena_bytes=1 << 20), "same"),
    "names": (lambda c: c["feature_spec"]["names"].__setitem__(1, "ax_sd"), "same"),
    # what the card claims of its model file (the chip scores with the card's quantization)
    "input shape": (lambda c: c["input"].update(shape=[1, 61]), "same"),
    "scale lie": (
        lambda c: c["output"]["quantization"].update(scale=c["output"]["quantization"]["scale"] * 1.01),
        "same",
    ),
    "flash lie": (lambda c: c.update(flash_bytes=c["flash_bytes"] + 1), "same"),
    "malformed": (lambda c: None, "schema"),
    "missing std": (lambda c: c["feature_spec"].pop("std"), "schema"),
    "nan std": (lambda c: c["feature_spec"]["std"].__setitem__(3, float("nan")), "schema"),
    "inf mean": (lambda c: c["feature_spec"]["mean"].__setitem__(3, float("inf")), "schema"),
    "negative std": (lambda c: c["feature_spec"]["std"].__setitem__(3, -0.5), "schema"),
    "zero scale": (lambda c: c["input"]["quantization"].update(scale=0.0), "schema"),
    "window": (lambda c: c["feature_spec"].update(window=256), "incompatible:features"),
    "bands": (other_bands, "incompatible:features"),
    "n_features": (stats_only, "incompatible:features"),
    "ranges": (lambda c: c["sensor"]["range_max"].__setitem__(0, 4.0), "incompatible:sensor"),
    "op": (lambda c: c["ops"].append("TANH"), "incompatible:ops"),
}


def update_package(
    retrained: Path, change: Mutation, malformed: bool = False
) -> tuple[bytes, list[SelfTestCase]]:
    """The retrained model's package with its card changed, and self-test vectors for its model."""
    card = json.loads((retrained / "model_card.json").read_text())
    change(card)
    text = card_text(card).replace(b"Infinity", b"1e999")  # json writes NaN and Infinity: not JSON
    if malformed:
        text = text[: len(text) // 2]
    n = card["input"]["shape"][-1] if card["input"].get("shape") else 0
    if n != len(json.loads((retrained / "model_card.json").read_text())["feature_spec"]["names"]):
        model = tiny_fc_model(n)
        xs = [[(i * 37 + k * 11) % 256 - 128 for k in range(n)] for i in range(3)]
        cases = [
            SelfTestCase(input_int8=x, expected_int8=ota_device.tflm_run(model, x), tolerance=0) for x in xs
        ]
    else:
        model, cases = (retrained / "model.tflite").read_bytes(), load_self_test(retrained / SELF_TEST_FILE)
    return raw_package(model, text), cases


@pytest.mark.parametrize("case", list(CASES))
def test_cards_the_chip_cannot_run_are_refused_as_the_python_agent_refuses_them(
    card_fw: Firmware, retrained: Path, signer: Signer, case: str
) -> None:
    change, expected = CASES[case]
    data, cases = update_package(retrained, change, malformed=case == "malformed")
    payload = command(manifest(data, signer, "1.1.0", model_id="tiny-synth", self_test=cases))
    rc, cmd, err = parse_cmd(card_fw.cards.lib, payload, DEVICE)
    assert rc == 0, err
    keep: list[Any] = []
    chip = card_fw.cards.verify(synth_config(card_fw, signer, keep), cmd, data, ("tiny-synth", "1.0.0"))
    python = python_verify(card_fw, signer, data, payload)
    if expected in ("ok", "same"):
        assert chip == python and (chip == "ok") == (expected == "ok"), (chip, python)
    elif expected == "schema":
        assert chip.startswith(SCHEMA_TEXT) and python.startswith(SCHEMA_TEXT), (chip, python)
    else:  # the Python agent would run it (its runtime recomputes features, guards, windows at run time)
        assert python == "ok", python
        assert chip.startswith(expected + ": ") and chip.endswith(NEW_IMAGE), chip


def test_an_update_is_refused_before_the_switch_or_runs_after_it_with_its_own_card(
    card_fw: Firmware, retrained: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ef_ota with app_main.cc's check_card: the chip-only refusal happens at VERIFY (no slot switched);
    the retrained package switches, and the booted slot's card reads back as the update's."""
    monkeypatch.setattr(
        ota_device, "tflm_run", lambda model, x: TflmModel(model).run(np.asarray([x], np.int8))[0].tolist()
    )
    wider, cases = update_package(retrained, CASES["window"][0])
    good, _ = update_package(retrained, CASES["retrained"][0])
    storage, server = Storage(), Server(card_fw.cards.lib, files={URL: wider})
    reports: list[OtaState] = []
    sensor = card_fw.card["sensor"]
    profile = ota_device.Profile(
        keys=[signer.trusted],
        factory=("tiny-synth", "1.0.0"),
        axes=tuple(sensor["axes"]),
        units=tuple(sensor["units"]),
        runtime=card_fw.runtime,
        arena=card_fw.arena,
        n_inputs=len(card_fw.card["feature_spec"]["names"]),
    )

    def boot() -> ota_device.Device:
        device = ota_device.Device(card_fw.cards.lib, storage, server, profile, reports)
        device.config.check_card = card_fw.cards.check_card  # ef_ota keeps a pointer to the config
        assert device.start() != RELOAD
        return device

    device = boot()
    assert (
        device.command(command(manifest(wider, signer, "1.1.0", model_id="tiny-synth", self_test=cases))) == 0
    )
    states = [r.state for r in reports]
    assert states[-1] == "FAILED" and "UPDATING" not in states and device.active == FACTORY
    assert str(reports[-1].reason).startswith("incompatible:features: the model's windows are 256")
    server.files[URL] = good
    assert (
        device.command(command(manifest(good, signer, "1.1.0", model_id="tiny-synth", self_test=cases), "c2"))
        == RELOAD
    )
    device = boot()
    assert device.active == 0 and device.pending and device.model == (retrained / "model.tflite").read_bytes()
    json_p, n = ctypes.c_void_p(), ctypes.c_uint32()
    tflite_p, tflite_n = ctypes.c_void_p(), ctypes.c_uint32()
    assert card_fw.cards.lib.ef_ota_model(device.mem, 0, ctypes.byref(tflite_p), ctypes.byref(tflite_n),
                                          ctypes.byref(json_p), ctypes.byref(n)) == 0  # fmt: skip
    assert json_p.value is not None
    rc, reason, card = card_fw.cards.read(ctypes.string_at(json_p.value, n.value))  # what load_model() reads
    assert rc == OK and card.model_version == b"1.1.0", reason
    assert card.threshold == json.loads((retrained / "model_card.json").read_text())["threshold"]["value"]
    device.acked()
    assert reports[-1].state == "UPDATED" and reports[-1].model_version == "1.1.0"
