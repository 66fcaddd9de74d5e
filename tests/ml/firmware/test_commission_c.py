"""On-device commissioning (`ef_commission.c`, compiled from the generated project) against the Python
runtime (`edge.calibration`, `edge.commissioning`): the same threshold, method, flags and report.

The C side scores through its callback as the chip does (`ef_commission_standardize` ->
`ef_quantize_input` -> TFLite Micro -> `ef_score`, with the tflite-micro interpreter for the invoke);
the Python side through `edge.scorer.Scorer` on the TFLM backend. The scores agree to float32
rounding (numpy sums the squared errors in float32, the core in double), so thresholds are held to
1e-6 relative, everything else in the report exactly.
"""

import ctypes
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import Channel, CommissioningReport, Event, decode, message_schemas
from edgefleet.edge.backends.base import create_backend
from edgefleet.edge.calibration import order_statistic_rank, tolerance_factor, upper_quantile_bound
from edgefleet.edge.commissioning import Baseline, Commissioner, CommissioningConfig
from edgefleet.edge.model import ModelBundle, load_model_dir
from edgefleet.edge.scorer import Scorer
from edgefleet.ml.firmware import FirmwareOptions, generate_project
from edgefleet.ml.firmware.project import card_target_far
from edgefleet.ml.runtime import TflmModel
from tests.ml.firmware.cbind import COMMISSION_SOURCES, Core, Header, c_float_p, compile_core, needs_cc

pytestmark = needs_cc
THRESHOLD_RTOL = 1e-6  # float32 scores: one rounding step of a score
STATS_RTOL = 1e-12  # the statistics on identical scores (libm's log/pow/lgamma vs numpy's and CPython's)
c_double_p = ctypes.POINTER(ctypes.c_double)
SCORE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, c_float_p, c_float_p, c_float_p, c_float_p)
DONE, COLLECTING, READY, EINVAL, ESCORE, EINACTIVE = 0, 1, 2, -1, -2, -3


class Config(ctypes.Structure):
    _fields_ = [
        ("windows", ctypes.c_int),
        ("target_far", ctypes.c_double),
        ("confidence", ctypes.c_double),
        ("margin", ctypes.c_double),
        ("folds", ctypes.c_int),
        ("min_std_fraction", ctypes.c_double),
        ("min_fault_visibility", ctypes.c_double),
        ("max_spread_ratio", ctypes.c_double),
    ]


class Threshold(ctypes.Structure):
    _fields_ = [
        ("value", ctypes.c_double),
        ("method", ctypes.c_int),
        ("boxcox_lambda", ctypes.c_double),
        ("tolerance_bound", ctypes.c_double),
        ("has_order_statistic", ctypes.c_int),
        ("order_statistic_bound", ctypes.c_double),
        ("oos_scores", ctypes.c_int),
    ]

    def method_name(self) -> str:
        return "order_statistic" if self.method == 0 else f"boxcox_tolerance:{self.boxcox_lambda:.3g}"


class Report(ctypes.Structure):
    _fields_ = [
        ("status", ctypes.c_int),
        ("windows", ctypes.c_int),
        ("threshold", ctypes.c_double),
        ("card_threshold", ctypes.c_double),
        ("target_far", ctypes.c_double),
        ("confidence", ctypes.c_double),
        ("method", ctypes.c_char * 32),
        ("spread_ratio_median", ctypes.c_double),
        ("spread_ratio_max", ctypes.c_double),
        ("widest_feature", ctypes.c_int),
        ("has_fault_visibility", ctypes.c_int),
        ("fault_visibility", ctypes.c_double),
        ("card_fault_visibility", ctypes.c_double),
        ("message", ctypes.c_char * 257),
    ]


def result_type(n_features: int) -> type[ctypes.Structure]:
    return type(
        "Result",
        (ctypes.Structure,),
        {
            "_fields_": [
                ("mean", ctypes.c_double * n_features),
                ("std", ctypes.c_double * n_features),
                ("threshold", ctypes.c_double),
                ("score_p50", ctypes.c_double),
                ("score_p99", ctypes.c_double),
                ("estimate", Threshold),
                ("report", Report),
            ]
        },
    )


class CommissionerT(ctypes.Structure):
    _fields_ = [
        ("config", Config),
        ("features", c_float_p),
        ("work", c_double_p),
        ("capacity", ctypes.c_int),
        ("collected", ctypes.c_int),
        ("active", ctypes.c_int),
    ]


@dataclass
class Project:
    core: Core
    lib: ctypes.CDLL
    bundle: ModelBundle
    scorer: Scorer
    tflm: TflmModel
    result: type[ctypes.Structure]

    @property
    def n(self) -> int:
        return self.core.n

    def chip_score(self, fail_after: int | None = None) -> Callable[..., int]:
        """The callback as the chip implements it (TFLite Micro: the tflite-micro interpreter)."""
        calls = [0]

        def score(_ctx: Any, x: Any, mean: Any, std: Any, out: Any) -> int:
            calls[0] += 1
            if fail_after is not None and calls[0] > fail_after:
                return 1
            z = np.zeros(self.n, dtype=np.float32)
            self.lib.ef_commission_standardize(x, mean, std, z.ctypes.data_as(c_float_p))
            q_out = np.asarray(self.tflm.run(self.core.quantize(z)[None])[0], dtype=np.int8)
            out[0] = self.core.score(z, q_out)
            return 0

        return SCORE_FN(score)

    def config(self, windows: int, **changes: float) -> Config:
        config = Config()
        self.lib.ef_commission_config_default(ctypes.byref(config))
        config.windows = windows
        for name, value in changes.items():
            setattr(config, name, value)
        return config

    def fit(self, data: np.ndarray, config: Config, **kw: int) -> tuple[int, ctypes.Structure]:
        x = np.ascontiguousarray(data, dtype=np.float32)
        work = np.zeros(2 * len(x) + 4 * self.n, dtype=np.float64)
        out = self.result()
        rc = self.lib.ef_commission_fit(
            ctypes.byref(config), x.ctypes.data_as(c_float_p), len(x), work.ctypes.data_as(c_double_p),
            self.chip_score(**kw), None, ctypes.byref(out),
        )  # fmt: skip
        return int(rc), out

    def python_fit(self, data: np.ndarray, windows: int) -> Baseline:
        card = self.bundle.card
        fs, threshold = card.feature_spec, card.threshold
        assert fs is not None and threshold is not None
        card_baseline = Baseline(np.asarray(fs.mean), np.asarray(fs.std), threshold.value, commissioned=False)
        commissioner = Commissioner(
            CommissioningConfig(windows=windows), card_baseline, card_target_far(card), list(fs.names),
            list(card.fault_probes),
        )  # fmt: skip
        return commissioner.fit(np.asarray(data, dtype=np.float64), lambda f, b: self.scorer.score(f, b)[0])


def build_project(model_dir: Path, root: Path) -> Project:
    generate_project(model_dir, "esp32s3", root / "fw")
    lib_path = compile_core(root / "fw" / "main", root, COMMISSION_SOURCES, "libefcommission.so")
    bundle = load_model_dir(model_dir)
    fs = bundle.card.feature_spec
    assert fs is not None
    core = Core(lib_path, fs.window, 6, len(fs.names))
    lib = core.lib
    lib.ef_tolerance_factor.restype = ctypes.c_double
    lib.ef_tolerance_factor.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double]
    lib.ef_order_statistic_rank.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double]
    lib.ef_upper_quantile_bound.argtypes = [
        c_double_p, ctypes.c_int, ctypes.c_double, ctypes.c_double, c_double_p, ctypes.POINTER(Threshold),
    ]  # fmt: skip
    lib.ef_commission_format_event.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Header), ctypes.POINTER(Report), ctypes.c_int64,
    ]  # fmt: skip
    return Project(
        core, lib, bundle, Scorer(bundle.card, create_backend("tflm", bundle)), TflmModel(bundle.tflite),
        result_type(len(fs.names)),
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_project(synth_model, tmp_path_factory.mktemp("fw-commission"))


def field_features(project: Project, windows: int, seed: int, **machine: float) -> np.ndarray:
    synth = dsp.VibrationSynth(dsp.MachineConfig(**machine), seed=seed)  # type: ignore[arg-type]
    frames = dsp.frame(synth.read(128 * windows).samples, 128, 128)
    return np.asarray(dsp.extract(frames, project.scorer.feature_config), dtype=np.float64)


def faulty_mount(project: Project) -> np.ndarray:
    """Commissioned while the machine already had faults: the trained faults look normal."""
    parts = []
    for seed, fault, n in ((6, "bearing_outer", 30), (7, "imbalance", 30), (8, None, 40)):
        synth = dsp.VibrationSynth(seed=seed)
        if fault:
            synth.schedule_fault(0.0, fault, 1.0)
        frames = dsp.frame(synth.read(128 * n).samples, 128, 128)
        parts.append(dsp.extract(frames, project.scorer.feature_config))
    return np.concatenate(parts).astype(np.float64)


# ------------------------------------------------------------------------------------ statistics


def crafted_scores(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":  # a mean square of Gaussian errors, as a reconstruction score
        return np.asarray(np.mean(rng.normal(0, 1, (n, 12)) ** 2, axis=1), dtype=np.float64)
    return np.asarray(rng.lognormal(-1.0, 0.8, n), dtype=np.float64)


@pytest.mark.parametrize("n", [30, 100, 230, 500])
@pytest.mark.parametrize("kind", ["gaussian", "lognormal"])
@pytest.mark.parametrize(("far", "confidence"), [(0.01, 0.9), (0.05, 0.95)])
def test_threshold_of_crafted_scores_matches_calibration(
    project: Project, n: int, kind: str, far: float, confidence: float
) -> None:
    scores = crafted_scores(kind, n, seed=n)
    expected = upper_quantile_bound(scores, far, confidence)
    out, work = Threshold(), np.zeros(n, dtype=np.float64)
    rc = project.lib.ef_upper_quantile_bound(
        scores.ctypes.data_as(c_double_p),
        n,
        far,
        confidence,
        work.ctypes.data_as(c_double_p),
        ctypes.byref(out),
    )
    assert rc == DONE
    assert out.method_name() == expected.method
    assert out.value == pytest.approx(expected.value, rel=STATS_RTOL)
    assert out.tolerance_bound == pytest.approx(expected.tolerance_bound, rel=STATS_RTOL)
    assert bool(out.has_order_statistic) == (expected.order_statistic_bound is not None)
    if expected.order_statistic_bound is not None:
        assert out.order_statistic_bound == expected.order_statistic_bound  # a score, picked by rank
    assert out.oos_scores == n


def test_tolerance_factor_and_rank_match_calibration(project: Project) -> None:
    lib = project.lib
    for coverage, confidence in ((0.99, 0.9), (0.95, 0.95), (0.999, 0.5)):
        for n in (3, 8, 29, 30, 100, 229, 230, 231, 500, 2000):
            factor = lib.ef_tolerance_factor(n, coverage, confidence)
            assert factor == pytest.approx(tolerance_factor(n, coverage, confidence), rel=1e-13)
            assert lib.ef_order_statistic_rank(n, coverage, confidence) == (
                order_statistic_rank(n, coverage, confidence) or 0
            )
    assert lib.ef_tolerance_factor(3, 0.99, 0.9999) == float("inf")  # no finite factor: as Python


def test_bad_threshold_inputs_are_refused(project: Project) -> None:
    s = np.ones(10)
    out, work = Threshold(), np.zeros(10)
    call = project.lib.ef_upper_quantile_bound
    for n, far, conf in ((2, 0.01, 0.9), (10, 0.0, 0.9), (10, 1.0, 0.9), (10, 0.01, 1.0)):
        assert (
            call(s.ctypes.data_as(c_double_p), n, far, conf, work.ctypes.data_as(c_double_p), out) == EINVAL
        )


# --------------------------------------------------------------- real commissioning, synth model


SCENARIOS: dict[str, tuple[Callable[[Project], np.ndarray], str]] = {
    "normal_30": (lambda p: field_features(p, 30, 9), "ok"),
    "normal_100": (lambda p: field_features(p, 100, 1), "ok"),
    "normal_256": (lambda p: field_features(p, 256, 2), "ok"),
    "noisy_mount": (lambda p: field_features(p, 100, 3, noise_g=0.08, noise_dps=1.5), "noisy_baseline"),
    "faulty_mount": (faulty_mount, "blind"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_commissioning_matches_the_python_runtime(project: Project, scenario: str) -> None:
    make, status = SCENARIOS[scenario]
    data = make(project)
    expected = project.python_fit(data, len(data))
    assert expected.report is not None and expected.report.status == status  # the scenario is what it says
    rc, out = project.fit(data, project.config(len(data)))
    assert rc == DONE
    np.testing.assert_allclose(out.mean, expected.mean, rtol=STATS_RTOL)
    np.testing.assert_allclose(out.std, expected.std, rtol=STATS_RTOL)
    assert out.threshold == pytest.approx(expected.threshold, rel=THRESHOLD_RTOL)
    assert out.score_p50 == pytest.approx(expected.score_p50, rel=THRESHOLD_RTOL)
    assert out.score_p99 == pytest.approx(expected.score_p99, rel=THRESHOLD_RTOL)
    buf = ctypes.create_string_buffer(2048)
    n = project.lib.ef_commission_format_report(buf, ctypes.c_size_t(2048), ctypes.byref(out.report))
    assert n == len(buf.value) > 0
    report = CommissioningReport.model_validate_json(buf.value)  # the contract accepts it
    want = expected.report.model_dump()
    got = report.model_dump()
    for key in ("threshold",):
        assert got.pop(key) == pytest.approx(want.pop(key), rel=THRESHOLD_RTOL)
    assert got == want  # method, flags, visibility, spread, widest feature and the message


def test_methods_and_flags_cover_every_outcome(project: Project) -> None:
    """The scenarios above exercise both methods and all three statuses (guards the parametrization)."""
    seen = set()
    for name in ("normal_30", "normal_256", "noisy_mount", "faulty_mount"):
        data = SCENARIOS[name][0](project)
        rc, out = project.fit(data, project.config(len(data)))
        assert rc == DONE
        seen.add((out.report.status, out.estimate.method))
    assert {s for s, _ in seen} == {0, 1, 2} and {m for _, m in seen} == {0, 1}


def test_a_card_without_fault_probes_reports_no_visibility(synth_model: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(synth_model, model_dir)
    card = json.loads((model_dir / "model_card.json").read_text())
    card["fault_probes"] = []
    (model_dir / "model_card.json").write_text(json.dumps(card))
    bare = build_project(model_dir, tmp_path)
    data = field_features(bare, 100, 3, noise_g=0.08, noise_dps=1.5)
    expected = bare.python_fit(data, len(data))
    rc, out = bare.fit(data, bare.config(len(data)))
    assert rc == DONE and not out.report.has_fault_visibility
    buf = ctypes.create_string_buffer(2048)
    assert bare.lib.ef_commission_format_report(buf, ctypes.c_size_t(2048), ctypes.byref(out.report)) > 0
    got = CommissioningReport.model_validate_json(buf.value)
    assert expected.report is not None and expected.report.fault_visibility is None
    assert got.fault_visibility is None and got.card_fault_visibility is None
    assert (got.status, got.method, got.message) == (expected.report.status, expected.report.method,
                                                     expected.report.message)  # fmt: skip
    assert got.threshold == pytest.approx(expected.report.threshold, rel=THRESHOLD_RTOL)


def test_commissioning_event_validates_and_carries_the_report(project: Project) -> None:
    data = faulty_mount(project)
    rc, out = project.fit(data, project.config(len(data)))
    assert rc == DONE
    header = Header(b"vib-1", 42, b"2026-01-02T03:04:05.678Z", 1)
    buf = ctypes.create_string_buffer(4096)
    n = project.lib.ef_commission_format_event(buf, 4096, ctypes.byref(header), ctypes.byref(out.report), 100)
    assert n == len(buf.value)
    jsonschema.validate(json.loads(buf.value), message_schemas()[Channel.EVENT.value])
    event = decode(Channel.EVENT, buf.value)
    assert isinstance(event, Event) and event.commissioning is not None
    assert (event.kind, event.active, event.severity, event.reason) == (
        "commissioning",
        True,
        "warning",
        "blind",
    )
    assert event.score == event.commissioning.fault_visibility == 0.0
    assert event.window == 100 and event.message == event.commissioning.message
    for cap in (0, 1, 50, n):  # too short: -1, never an overrun
        small = ctypes.create_string_buffer(cap + 8)
        rc = project.lib.ef_commission_format_event(
            small, cap, ctypes.byref(header), ctypes.byref(out.report), 100
        )
        assert rc == -1 and len(small.value) < max(cap, 1)


def test_a_failing_score_callback_and_too_few_windows_are_errors(project: Project) -> None:
    data = field_features(project, 40, 11)
    assert project.fit(data, project.config(40), fail_after=10)[0] == ESCORE
    assert project.fit(data, project.config(40), fail_after=40)[0] == ESCORE  # fails on a fault probe
    assert project.fit(data[:7], project.config(7))[0] == EINVAL
    assert project.fit(data, project.config(40, folds=1))[0] == EINVAL


# ---------------------------------------------------------------------------- the commissioner


def test_commissioner_collects_restarts_and_refuses_bad_counts(project: Project) -> None:
    lib, n_features, capacity = project.lib, project.n, 64
    features = np.zeros(capacity * n_features, dtype=np.float32)
    work = np.zeros(2 * capacity + 4 * n_features, dtype=np.float64)
    c = CommissionerT()

    def init(windows: int) -> int:
        return int(lib.ef_commissioner_init(
            ctypes.byref(c), ctypes.byref(project.config(windows)), features.ctypes.data_as(c_float_p),
            work.ctypes.data_as(c_double_p), capacity,
        ))  # fmt: skip

    assert init(5) == EINVAL and init(65) == EINVAL  # as CommissioningConfig: 0 or >= 8; and the buffer
    assert init(0) == DONE and not c.active and lib.ef_commissioner_needed(ctypes.byref(c)) == 0
    rows = field_features(project, 20, 12).astype(np.float32)
    assert lib.ef_commissioner_add(ctypes.byref(c), rows[0].ctypes.data_as(c_float_p)) == EINACTIVE
    assert init(10) == DONE and c.active
    assert lib.ef_commissioner_restart(ctypes.byref(c), 7) == EINVAL and c.config.windows == 10
    assert lib.ef_commissioner_restart(ctypes.byref(c), 65) == EINVAL
    codes = [lib.ef_commissioner_add(ctypes.byref(c), r.ctypes.data_as(c_float_p)) for r in rows[:11]]
    assert codes == [COLLECTING] * 9 + [READY, EINACTIVE]
    assert lib.ef_commissioner_needed(ctypes.byref(c)) == 0
    out = project.result()
    assert lib.ef_commissioner_finish(ctypes.byref(c), project.chip_score(), None, ctypes.byref(out)) == DONE
    assert not c.active and out.report.windows == 10
    expected = project.python_fit(rows[:10], 10)
    assert out.threshold == pytest.approx(expected.threshold, rel=THRESHOLD_RTOL)
    assert (
        lib.ef_commissioner_finish(ctypes.byref(c), project.chip_score(), None, ctypes.byref(out))
        == EINACTIVE
    )
    assert lib.ef_commissioner_restart(ctypes.byref(c), -1) == DONE and c.active and c.config.windows == 10
    assert lib.ef_commissioner_restart(ctypes.byref(c), 0) == DONE and not c.active


def test_options_set_the_firmware_defaults_and_refuse_bad_counts(synth_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 8"):
        FirmwareOptions(commissioning={"windows": 5})
    with pytest.raises(ValueError, match="exceed the capacity"):
        FirmwareOptions(commissioning={"windows": 300, "capacity": 256})
    options = FirmwareOptions(
        commissioning={"windows": 120, "target_far": 0.02, "confidence": 0.95, "capacity": 300}
    )
    generate_project(synth_model, "esp32s3", tmp_path / "fw", options)
    settings = (tmp_path / "fw/main/model_settings.h").read_text()
    for name, value in (
        ("WINDOWS", "120"),
        ("CAPACITY", "300"),
        ("TARGET_FAR", "0.02"),
        ("CONFIDENCE", "0.95"),
    ):
        assert f"#define EF_COMMISSION_{name} {value}" in settings
    assert "per-window false-alarm rate of 0.02 at 95 % confidence" in (tmp_path / "fw/README.md").read_text()
