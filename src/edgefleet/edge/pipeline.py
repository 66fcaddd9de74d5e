"""The device loop without the network: guards -> features -> int8 inference -> decision.

`DeviceCore.process` takes a batch of windows (B, W, A) and returns one `WindowResult` per
window, each with the events it raised. The vectorized part (guards, features, standardization,
inference, RMS velocity) runs over the whole batch; decisions then run window by window, as the
firmware does. `edge.device` adds the outbox, the MQTT link and the clock around it.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edgefleet.contracts import CommissioningReport, Explanation
from edgefleet.dsp import MachineConfig, debounce_in_hops
from edgefleet.edge.backends import InferenceBackend, create_backend
from edgefleet.edge.commissioning import Baseline, Commissioner
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.decision import Debouncer, SimulatedGpio, rms_velocity_mm_s, severity_zone
from edgefleet.edge.drift import DriftMonitor
from edgefleet.edge.explain import Explainer, summary
from edgefleet.edge.guards import REASONS, InputGuard, RejectCounter
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.scorer import Scorer, default_sensor
from edgefleet.edge.telemetry import IntervalStats

__all__ = ["DeviceCore", "EventDraft", "Scorer", "State", "WindowResult", "default_sensor"]

log = logging.getLogger(__name__)

State = Literal["commissioning", "normal", "alarm", "rejected", "degraded"]
KEY_FEATURES = 8


@dataclass(frozen=True)
class EventDraft:
    """An event before it gets its seq and timestamp (the outbox assigns those)."""

    kind: Literal["anomaly", "rule", "sensor_fault", "drift", "commissioning"]
    active: bool
    severity: Literal["info", "warning", "critical"] = "warning"
    score: float | None = None
    threshold: float | None = None
    window: int | None = None
    features: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    message: str | None = None
    explanation: Explanation | None = None
    commissioning: CommissioningReport | None = None


@dataclass(frozen=True)
class WindowResult:
    window: int
    score: float | None
    threshold: float | None
    state: State
    anomaly: bool
    rejected: list[str]
    velocity_mm_s: float | None
    events: list[EventDraft]

    def as_record(self) -> dict[str, object]:
        return {
            "window": self.window,
            "score": self.score,
            "threshold": self.threshold,
            "state": self.state,
            "anomaly": self.anomaly,
            "rejected": self.rejected,
        }


class DeviceCore:
    """The decision-making part of a device; `model=None` runs degraded (rule checks only)."""

    def __init__(
        self,
        config: DeviceConfig,
        model: ModelBundle | None,
        *,
        backend: InferenceBackend | None = None,
        gpio: SimulatedGpio | None = None,
    ) -> None:
        self.config = config
        self.rule_debouncer = Debouncer(config.rule_debounce)
        self.rule_zone = "A"
        self.fault_debouncers = {r: Debouncer(config.fault) for r in REASONS}
        self._faults_live: set[str] = set()
        self.gpio = gpio or SimulatedGpio(config.gpio_pin)
        self.rejects = RejectCounter()
        self.stats = IntervalStats()
        self.windows_seen = 0
        self._load(model, backend)

    def swap_model(self, model: ModelBundle | None, backend: InferenceBackend | None = None) -> None:
        """Run `model` from the next window on (an OTA switch or rollback).

        The scorer, threshold, guards and drift monitor are rebuilt from the new card, and the
        device commissions again if it is configured to. On an error the old model stays.
        """
        self._load(model, backend)
        log.info(
            "now running %s", f"{model.card.model_id} {model.card.model_version}" if model else "no model"
        )

    def _load(self, model: ModelBundle | None, backend: InferenceBackend | None) -> None:
        config = self.config
        scorer: Scorer | None = None
        if model is not None:  # build the scorer first: a failure leaves the core as it was
            card = model.card
            scorer = Scorer(card, backend or create_backend(config.backend, model, config.arena_bytes))
            assert card.feature_spec is not None and card.sensor is not None and card.threshold is not None
            fs = card.feature_spec
            self.sample_rate_hz = fs.sample_rate_hz
            self.window, self.hop = fs.window, fs.hop
            sensor = card.sensor
            self.card_baseline = Baseline(
                np.asarray(fs.mean), np.asarray(fs.std), card.threshold.value, commissioned=False
            )
            far = card.threshold.target_false_alarm_rate
            if far is None and card.threshold.percentile is not None:
                far = 1.0 - card.threshold.percentile / 100.0
            self.commissioner = Commissioner(
                config.commissioning,
                self.card_baseline,
                far or 0.01,
                feature_names=list(fs.names),
                fault_probes=list(card.fault_probes),
            )
        else:  # no model: the seed's MPU6050 at 200 Hz in 128-sample windows, rule checks only
            self.sample_rate_hz, self.window, self.hop = MachineConfig().sample_rate_hz, 128, 128
            sensor = default_sensor()
            self.card_baseline = Baseline(np.zeros(1), np.ones(1), float("inf"), commissioned=False)
            self.commissioner = Commissioner(
                config.commissioning.model_copy(update={"windows": 0}), self.card_baseline, 0.01
            )
        self.model = model
        self.card = model.card if model else None
        self.scorer = scorer
        self.sensor = sensor
        self.guard = InputGuard.for_sensor(sensor, self.sample_rate_hz, config.guards)
        self.baseline = self.card_baseline
        # k of n counted in window lengths: one knock seen by several overlapping windows is no alarm
        k, n, m = debounce_in_hops(
            config.decision.k, config.decision.n, config.decision.m, self.window, self.hop
        )
        self.debouncer = Debouncer(config.decision.model_copy(update={"k": k, "n": n, "m": m}))
        self.drift = DriftMonitor(config.drift)
        self.explainer = Explainer(
            scorer.names if scorer else [],
            list(sensor.axes),
            self.sample_rate_hz,
            config.shaft_hz,
            list(config.rule.axes),
        )

    @property
    def mode(self) -> Literal["commissioning", "running", "degraded"]:
        if self.scorer is None:
            return "degraded"
        return "commissioning" if self.commissioner.active else "running"

    @property
    def threshold(self) -> float | None:
        return self.baseline.threshold if self.scorer else None

    def recommission(self, windows: int | None = None) -> None:
        if self.scorer is None:
            log.warning("recommission ignored: no model (degraded mode)")
            return
        self.commissioner.restart(windows)
        self.debouncer.reset()
        self.drift.reset()
        self.explainer.reset()
        log.info("re-commissioning over %d windows", self.commissioner.config.windows)

    def _baseline_score(self, features: np.ndarray, baseline: Baseline) -> np.ndarray:
        assert self.scorer is not None
        return self.scorer.score(features, baseline)[0]

    def process(self, windows: np.ndarray, timestamps: np.ndarray | None = None) -> list[WindowResult]:
        """Decide a batch of windows (B, W, A): the same results, window for window, as feeding
        them one at a time (commissioning may end inside the batch; the rest is then scored)."""
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim == 2:
            windows = windows[None]
        # Same (B, W, A) shape, but each axis contiguous in memory: every per-axis reduction in the
        # guards, features and rule then runs along contiguous data (about 10x faster).
        by_axis = np.ascontiguousarray(windows.transpose(0, 2, 1))
        windows = by_axis.transpose(0, 2, 1)
        guard = self.guard.check(windows, timestamps)
        ok = guard.ok
        all_ok = bool(ok.all())
        clean = windows if all_ok else by_axis[ok].transpose(0, 2, 1)
        velocity = (
            rms_velocity_mm_s(clean, self.sample_rate_hz, self.config.rule)
            if self.config.rule.enabled and len(clean)
            else np.zeros(0)
        )
        scores = z = None
        invoke_us = None
        # clean windows [0, first_scored) commission (or, with no model, are never scored)
        first_scored = len(clean)
        commissioned: Baseline | None = None
        threshold_before = self.threshold
        if self.scorer is not None and len(clean):
            feats = self.scorer.features(clean)
            first_scored = 0
            if self.commissioner.active:
                first_scored = min(self.commissioner.needed, len(clean))
                commissioned = self.commissioner.add(feats[:first_scored], self._baseline_score)
                if commissioned is not None:
                    self.baseline = commissioned
                    self.drift.reset()
                else:
                    first_scored = len(clean)
            if first_scored < len(clean):
                scores, z, invoke_us = self.scorer.score(feats[first_scored:], self.baseline)
        drift_changes = (
            {row: (raised, value) for row, raised, value in self.drift.update_rows(z)}
            if z is not None and len(z)
            else {}
        )
        results = []
        j = 0
        ok_list = ok.tolist()
        velocity_list = velocity.tolist()
        score_list = scores.tolist() if scores is not None else []
        for i in range(len(windows)):
            index = self.windows_seen
            self.windows_seen += 1
            events: list[EventDraft] = []
            reasons = guard.reasons_of(i) if guard.reasons else []
            for reason in reasons:
                self.rejects.add(reason)
            self._update_faults(reasons, index, events)
            if not ok_list[i]:
                self.stats.add(None, False, None)
                results.append(
                    WindowResult(index, None, self.threshold, "rejected", False, reasons, None, events)
                )
                continue
            v = velocity_list[j] if velocity_list else None
            if v is not None:
                self._update_rule(v, index, events)
            score = None
            anomaly = False
            state: State = "degraded" if self.scorer is None else "commissioning"
            threshold = self.threshold
            if j < first_scored:
                threshold = threshold_before
                if self.scorer is not None:
                    self.explainer.remember(index, clean[j])
                if commissioned is not None and j == first_scored - 1 and commissioned.report is not None:
                    events.append(self._commissioning_event(commissioned.report, index))
            elif scores is not None and z is not None:
                k = j - first_scored
                score = score_list[k]
                anomaly = score > self.baseline.threshold
                self._update_anomaly(score, z[k], clean[j], v, index=index, events=events)
                state = "alarm" if self.debouncer.active else "normal"
                if not anomaly and not self.debouncer.active:
                    self.explainer.remember(index, clean[j])
                if k in drift_changes:
                    self._drift_event(*drift_changes[k], index, events)
            self.stats.add(score, anomaly, invoke_us)
            results.append(WindowResult(index, score, threshold, state, anomaly, [], v, events))
            j += 1
        self.gpio.set(self.debouncer.active or self.rule_debouncer.active, time.monotonic())
        return results

    def _commissioning_event(self, report: CommissioningReport, index: int) -> EventDraft:
        problem = report.status != "ok"
        return EventDraft(
            "commissioning",
            problem,
            "warning" if problem else "info",
            score=report.fault_visibility,
            threshold=report.threshold,
            window=index,
            reason=report.status,
            message=report.message,
            commissioning=report,
        )

    def _update_faults(self, reasons: list[str], index: int, events: list[EventDraft]) -> None:
        if not reasons and not self._faults_live:
            return  # the common case: a clean window and no fault history to age
        for reason in sorted(self._faults_live.union(reasons)):
            debouncer = self.fault_debouncers[reason]
            change = debouncer.update_flag(reason in reasons)
            if debouncer.active or debouncer.recent_count():
                self._faults_live.add(reason)
            else:  # nothing left to remember: same as a fresh debouncer
                debouncer.reset()
                self._faults_live.discard(reason)
            if change is not None:
                events.append(
                    EventDraft(
                        "sensor_fault",
                        change.active,
                        "critical" if change.active else "info",
                        window=index,
                        reason=reason,
                        message=f"sensor input {reason}" + ("" if change.active else " cleared"),
                    )
                )

    def _update_rule(self, velocity: float, index: int, events: list[EventDraft]) -> None:
        cfg = self.config.rule
        zone = severity_zone(velocity, cfg.zone_limits_mm_s)
        change = self.rule_debouncer.update_flag(zone >= cfg.alarm_zone)
        if change is not None:
            self.rule_zone = zone
            events.append(
                EventDraft(
                    "rule",
                    change.active,
                    ("critical" if zone == "D" else "warning") if change.active else "info",
                    score=velocity,
                    threshold=cfg.zone_limits_mm_s["BCD".index(cfg.alarm_zone)],
                    window=index,
                    reason=f"iso10816_zone_{zone}",
                    message=f"RMS velocity {velocity:.2f} mm/s (zone {zone})",
                )
            )

    def _update_anomaly(
        self,
        score: float,
        z: np.ndarray,
        window: np.ndarray,
        velocity: float | None,
        *,
        index: int,
        events: list[EventDraft],
    ) -> None:
        change = self.debouncer.update(score, self.baseline.threshold)
        if change is None or self.card is None:
            return
        assert self.scorer is not None
        top = np.argsort(-np.abs(z), kind="stable")[:KEY_FEATURES]
        explanation = (
            self.explainer.explain(window, z, velocity, self.config.rule.zone_limits_mm_s)
            if change.active
            else None
        )
        events.append(
            EventDraft(
                "anomaly",
                change.active,
                "warning" if change.active else "info",
                score=score,
                threshold=self.baseline.threshold,
                window=index,
                features={self.scorer.names[k]: round(float(z[k]), 4) for k in top},
                message=summary(explanation) if explanation else "anomaly cleared",
                explanation=explanation,
            )
        )

    def _drift_event(self, raised: bool, value: float, index: int, events: list[EventDraft]) -> None:
        events.append(
            EventDraft(
                "drift",
                raised,
                "warning" if raised else "info",
                score=value,
                threshold=self.config.drift.limit,
                window=index,
                reason="standardized_mean_shift",
            )
        )
