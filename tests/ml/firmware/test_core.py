"""The generated portable core, compiled on the host from the project's own files, against the Python side."""

import ctypes
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import (
    Channel,
    Event,
    FeatureSpec,
    ModelCard,
    Status,
    Telemetry,
    decode,
    load_model_card,
    message_schemas,
)
from edgefleet.dsp.codegen import FLOAT_ATOL, FLOAT_RTOL
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.decision import Debouncer, IsoRuleConfig, rms_velocity_mm_s, severity_zone
from edgefleet.edge.drift import DriftMonitor
from edgefleet.edge.guards import REASONS, GuardConfig, InputGuard
from edgefleet.ml.firmware import generate_project
from edgefleet.ml.runtime import TflmModel
from tests.ml.firmware.cbind import (
    REASON_NAMES,
    VELOCITY_RTOL,
    Core,
    EventT,
    Header,
    TelemetryT,
    c_float_p,
    compile_core,
    needs_cc,
    reason_bits,
)

pytestmark = needs_cc
RTOL, ATOL = FLOAT_RTOL, FLOAT_ATOL  # the firmware's float FFT features (dsp.codegen)


@dataclass
class Project:
    card: ModelCard
    core: Core
    model: bytes
    config: dsp.FeatureConfig


@pytest.fixture(scope="module")
def project(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("fw-core")
    generate_project(synth_model, "esp32s3", root / "fw")
    card = load_model_card(synth_model / "model_card.json")
    fs, sensor = card.feature_spec, card.sensor
    assert fs is not None and sensor is not None
    lib = compile_core(root / "fw" / "main", root)
    cfg = dsp.FeatureConfig.from_spec(fs.sample_rate_hz, sensor.axes, fs.sets, fs.bands_hz)
    core = Core(lib, fs.window, len(sensor.axes), len(fs.names))
    return Project(card, core, (synth_model / "model.tflite").read_bytes(), cfg)


def recording(seconds: float, seed: int = 21, dropouts_per_s: float = 0.0) -> np.ndarray:
    """A replayed synthetic recording: normal, a bearing fault, normal again."""
    synth = dsp.VibrationSynth(dsp.MachineConfig(dropouts_per_s=dropouts_per_s), seed=seed)
    synth.schedule_fault(seconds * 0.35, "bearing_outer", 1.0)
    synth.schedule_fault(seconds * 0.6, "normal")
    return synth.read(int(seconds * 200)).samples


def test_project_features_match_dsp_on_a_recording(project: Project) -> None:
    windows = dsp.frame(recording(40.0), 128, 64)
    expected = dsp.extract(windows, project.config)
    for i, (w, py) in enumerate(zip(windows, expected, strict=True)):
        rc, out = project.core.features(w)
        assert rc == 0
        err = np.abs(out.astype(np.float64) - py) - (RTOL * np.abs(py.astype(np.float64)) + ATOL)
        assert np.all(err <= 0), f"window {i}, feature {int(np.argmax(err))}"


def test_scoring_matches_the_python_device_computation(project: Project) -> None:
    card, core = project.card, project.core
    fs, qin, qout = card.feature_spec, card.input.quantization, card.output.quantization
    assert fs is not None and qin is not None and qout is not None
    windows = dsp.frame(recording(20.0, seed=4), 128, 128)
    x = dsp.extract(windows, project.config)
    z = dsp.standardize(x, fs.mean, fs.std)
    q = dsp.quantize(z, qin.scale, qin.zero_point)
    model = TflmModel(project.model)
    qo = np.asarray(model.run(q), dtype=np.int8)
    scores = dsp.reconstruction_score(z, dsp.dequantize(qo, qout.scale, qout.zero_point))
    for i in range(len(x)):
        zc = core.standardize(x[i])
        np.testing.assert_allclose(zc, z[i], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(core.quantize(z[i]), q[i])
        assert core.score(z[i], qo[i]) == pytest.approx(float(scores[i]), rel=1e-5)


def test_quantize_rounds_half_away_from_zero_and_clips(project: Project) -> None:
    qin = project.card.input.quantization
    assert qin is not None
    z = np.zeros(project.core.n, dtype=np.float32)
    z[:6] = np.array([0.5, -0.5, 1.5, -1.5, 1e6, -1e6]) * qin.scale
    np.testing.assert_array_equal(project.core.quantize(z), dsp.quantize(z, qin.scale, qin.zero_point))


def guard_cases(rng: np.random.Generator) -> list[np.ndarray]:
    base = np.stack([rng.normal(0, 0.05, 128)] * 3 + [rng.normal(0, 2.0, 128)] * 3, axis=1)
    base[:, 2] += 1.0
    cases = [base.copy() for _ in range(9)]
    cases[1][40, 3] = np.nan
    cases[2][10, 0] = 2.5  # out of range
    cases[3][50:55, 1] = 2.0  # saturated run of 5
    cases[4][50:53, 1] = 2.0  # 3 clipped: not a run of 4
    cases[5][:, 4] = 0.25  # flat axis: stuck
    cases[6][60:64] = cases[6][60]  # frozen: 4 identical readings
    cases[7][60:63] = cases[7][60]  # 3 identical: fine
    cases[8][70:90] = 0.0  # I2C dropout: all axes read 0
    return cases


def test_guards_match_the_python_runtime(project: Project) -> None:
    sensor = project.card.sensor
    assert sensor is not None
    guard = InputGuard.for_sensor(sensor, 200.0, GuardConfig())
    windows = guard_cases(np.random.default_rng(1))
    windows += list(dsp.frame(recording(30.0, seed=8, dropouts_per_s=0.3), 128, 64))
    batch = np.asarray(windows, dtype=np.float32)
    result = guard.check(batch.astype(np.float64))
    fired = set()
    for i, w in enumerate(batch):
        expected = reason_bits(result.reasons_of(i))
        assert project.core.guard(w) == expected, f"window {i}: python {result.reasons_of(i)}"
        fired |= set(result.reasons_of(i))
    assert {"nonfinite", "out_of_range", "saturated", "stuck"} <= fired
    assert not result.reasons_of(0) and not result.reasons_of(4) and not result.reasons_of(7)


@dataclass
class Decision:
    """What the runtime decided for one window: state and the transitions it caused."""

    state: str
    anomaly: bool | None = None
    faults: dict[str, bool] = field(default_factory=dict)
    rule: bool | None = None
    rule_zone: str | None = None
    drift: bool | None = None
    drift_value: float | None = None
    alert: bool = False  # the GPIO: anomaly or rule raised


def python_decisions(
    reasons: list[list[str]],
    velocity: list[float],
    scores: list[float],
    z: np.ndarray,
    threshold: float,
    spec: FeatureSpec,
) -> list[Decision]:
    """The device runtime's decision logic (as edge.pipeline wires it, default configs), window by window."""
    device = DeviceConfig(device_id="replay")
    # the anomaly debounce is counted in window lengths, converted to hops (as DeviceCore and ef_core do)
    cfg = device.decision
    k, n, m = dsp.debounce_in_hops(cfg.k, cfg.n, cfg.m, spec.window, spec.hop)
    anomaly = Debouncer(cfg.model_copy(update={"k": k, "n": n, "m": m}))
    rule = Debouncer(device.rule_debounce)
    drift = DriftMonitor(device.drift)
    faults = {r: Debouncer(device.fault) for r in REASONS}
    out: list[Decision] = []
    for i, why in enumerate(reasons):
        d = Decision("rejected")
        for reason, debouncer in faults.items():
            if not debouncer.active and reason not in why and not debouncer._recent:
                continue
            change = debouncer.update_flag(reason in why)
            if change is not None:
                d.faults[reason] = change.active
        if not why:
            zone = severity_zone(velocity[i], device.rule.zone_limits_mm_s)
            change = rule.update_flag(zone >= device.rule.alarm_zone)
            d.rule, d.rule_zone = (None if change is None else change.active), zone
            change = anomaly.update(scores[i], threshold)
            d.anomaly = None if change is None else change.active
            d.state = "alarm" if anomaly.active else "normal"
            d.drift = drift.update(z[i : i + 1])
            d.drift_value = drift.value
        d.alert = anomaly.active or rule.active
        out.append(d)
    return out


def test_decisions_match_the_python_runtime_window_by_window(project: Project) -> None:
    card, core = project.card, project.core
    fs, sensor, threshold = card.feature_spec, card.sensor, card.threshold
    qin, qout = card.input.quantization, card.output.quantization
    assert fs is not None and sensor is not None and threshold is not None
    assert qin is not None and qout is not None
    windows = dsp.frame(recording(120.0, seed=5, dropouts_per_s=0.05), 128, 64).astype(np.float32)
    windows[300:330] = windows[300, 0]  # a dead sensor for 30 windows: a sensor fault raised, then cleared
    guard = InputGuard.for_sensor(sensor, fs.sample_rate_hz, GuardConfig()).check(windows.astype(np.float64))
    reasons = [guard.reasons_of(i) for i in range(len(windows))]
    x = dsp.extract(windows, project.config)
    z = dsp.standardize(x, fs.mean, fs.std)
    qo = np.asarray(TflmModel(project.model).run(dsp.quantize(z, qin.scale, qin.zero_point)), dtype=np.int8)
    scores = [float(s) for s in dsp.reconstruction_score(z, dsp.dequantize(qo, qout.scale, qout.zero_point))]
    velocity = rms_velocity_mm_s(windows.astype(np.float64), fs.sample_rate_hz, IsoRuleConfig()).tolist()
    n = len(scores)
    normal, fault = np.median(scores[: n // 4]), np.median(scores[int(n * 0.4) : int(n * 0.55)])
    assert fault > 10 * normal, "the model must separate the bearing fault"
    # The card's threshold, and one between normal and fault so the replay raises and clears.
    for limit in (threshold.value, float(np.sqrt(normal * fault))):
        expected = python_decisions(reasons, velocity, scores, z, limit, fs)
        decider = core.decider()
        assert decider.threshold == threshold.value
        decider.threshold = limit
        for i, w in enumerate(windows):
            v = core.velocity(w)
            # the Python runtime projects in float32 (edge.decision); the C core runs a float FFT
            assert v == pytest.approx(velocity[i], rel=VELOCITY_RTOL), f"window {i}: RMS velocity"
            step = core.step(decider, core.guard(w), v, scores[i], z[i])
            got = Decision(
                {0: "rejected", 1: "normal", 2: "alarm"}[step.state],
                {0: None, 1: True, -1: False}[step.anomaly],
                {REASON_NAMES[r]: step.faults[r] == 1 for r in range(5) if step.faults[r] != 0},
            )
            if step.state != 0:
                got.rule, got.rule_zone = {0: None, 1: True, -1: False}[step.rule], "ABCD"[step.rule_zone]
                got.drift = {0: None, 1: True, -1: False}[step.drift]
                got.drift_value = None if step.drift_value < 0 else step.drift_value
            got.alert = bool(core.lib.ef_decider_alert(ctypes.byref(decider)))
            if got.drift_value is not None and expected[i].drift_value is not None:
                assert got.drift_value == pytest.approx(expected[i].drift_value, rel=1e-9), (
                    f"window {i}: drift"
                )
                got.drift_value = expected[i].drift_value
            assert got == expected[i], f"window {i}, threshold {limit}"
    events = [(name, value) for e in expected for name, value in (
        ("anomaly", e.anomaly), ("rule", e.rule), ("drift", e.drift),
        *(("fault", v) for v in e.faults.values())) if value is not None]  # fmt: skip
    for kind in ("anomaly", "rule", "fault"):
        assert (kind, True) in events and (kind, False) in events, f"the replay must raise and clear {kind}"
    assert ("drift", True) in events, "the replay must raise drift"


def test_debouncer_rejects_bad_settings(project: Project) -> None:
    from tests.ml.firmware.cbind import Debouncer as CDebouncer

    d = CDebouncer()
    init = project.core.lib.ef_debouncer_init
    assert init(ctypes.byref(d), 3, 5, 5, 0.9) == 0
    assert init(ctypes.byref(d), 6, 5, 5, 0.9) == -1  # k > n
    assert init(ctypes.byref(d), 3, 64, 5, 0.9) == 0  # EF_DEBOUNCE_MAX_N
    assert init(ctypes.byref(d), 3, 65, 5, 0.9) == -1  # n beyond the buffer
    assert init(ctypes.byref(d), 3, 5, 5, 1.5) == -1


# ------------------------------------------------------------------------------------------ messages
SCHEMAS = message_schemas()


def header(seq: int = 7, synced: bool = True) -> Header:
    return Header(b"esp32s3-a1b2c3", seq, b"2026-11-23T18:40:01.250Z", int(synced))


def check(channel: Channel, payload: str) -> object:
    jsonschema.validate(json.loads(payload), SCHEMAS[channel.value])
    return decode(channel, payload.encode())


def test_status_messages_validate_and_decode(project: Project) -> None:
    for online in (1, 0):
        n, text = project.core.format("status", header(), online, b"running")
        assert n == len(text) > 0
        msg = check(Channel.STATUS, text)
        assert isinstance(msg, Status)
        assert msg.state == ("online" if online else "offline") and msg.mode == "running"
        assert msg.model_id == project.card.model_id and msg.model_version == project.card.model_version
        assert msg.device_id == "esp32s3-a1b2c3" and msg.seq == 7 and msg.ts.microsecond == 250_000


def test_event_messages_validate_and_decode(project: Project) -> None:
    names = (ctypes.c_char_p * 3)(b"ax_rms", b"gz_band50-100", b"ay_mean")
    values = (ctypes.c_float * 3)(3.25, -2.5, 1e-05)
    anomaly = EventT(b"anomaly", 1, b"warning", 1, 0.8125, 0.5, 41, 3, names, ctypes.cast(values, c_float_p),
                     None, b"anomaly")  # fmt: skip
    _, text = project.core.format("event", header(8), anomaly)
    msg = check(Channel.EVENT, text)
    assert isinstance(msg, Event)
    assert (msg.kind, msg.active, msg.score, msg.threshold, msg.window) == ("anomaly", True, 0.8125, 0.5, 41)
    assert msg.features == pytest.approx({"ax_rms": 3.25, "gz_band50-100": -2.5, "ay_mean": 1e-05}, rel=1e-6)
    fault = EventT(b"sensor_fault", 0, b"info", 0, 0.0, 0.0, -1, 0, None, None, b"stuck",
                   b'sensor input "stuck"\\ cleared\n')  # fmt: skip
    _, text = project.core.format("event", header(9, synced=False), fault)
    msg = check(Channel.EVENT, text)
    assert isinstance(msg, Event)
    assert msg.reason == "stuck" and msg.window is None and msg.score is None and not msg.clock_synced
    assert msg.message == 'sensor input "stuck"\\ cleared\n'


def test_an_anomaly_event_without_its_score_is_not_valid(project: Project) -> None:
    bad = EventT(b"anomaly", 1, b"warning", 1, float("nan"), 0.5, 3, 0, None, None, None, None)
    _, text = project.core.format("event", header(), bad)
    assert "NaN" not in text and "nan" not in text  # non-finite numbers are left out...
    with pytest.raises(Exception, match="score"):
        check(Channel.EVENT, text)  # ...and the contract says what is missing


def test_telemetry_messages_validate_and_decode(project: Project) -> None:
    rejected = (ctypes.c_uint64 * 5)(2, 0, 1, 0, 4)
    t = TelemetryT(
        b"running", 3600.5, 60.0, 187, 1, 3 / 187, 0.12, 0.4, 0.9, 151.5, 0.75, 4096, rejected, 3, 1
    )
    _, text = project.core.format("telemetry", header(10), t)
    msg = check(Channel.TELEMETRY, text)
    assert isinstance(msg, Telemetry)
    assert msg.rejected == {"nonfinite": 2, "saturated": 1, "gap": 4}
    assert msg.windows == 187 and msg.anomaly_rate == pytest.approx(3 / 187) and msg.outbox_depth == 3
    assert msg.arena_bytes == 4096 and msg.model_id == project.card.model_id and msg.drift == 0.75
    quiet = TelemetryT(b"degraded", 5.0, 5.0, 0, 0, 0, 0, 0, 0, -1.0, -1.0, 0, (ctypes.c_uint64 * 5)(), 0, 0)
    _, text = project.core.format("telemetry", header(11), quiet)
    msg = check(Channel.TELEMETRY, text)
    assert isinstance(msg, Telemetry)
    assert msg.score_p50 is None and msg.inference_us is None and msg.drift is None and msg.rejected == {}


def test_a_too_small_buffer_is_reported_not_overrun(project: Project) -> None:
    n, _ = project.core.format("status", header(), 1, b"running")
    short, text = project.core.format("status", header(), 1, b"running", cap=n)  # no room for the NUL
    assert short == -1 and len(text) < n
    exact, _ = project.core.format("status", header(), 1, b"running", cap=n + 1)
    assert exact == n
