"""Field shift on real data: a fan at held-out speeds, commissioned on N windows; false alarms, recall."""

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import _fan_speeds as fan
import _field_eval as fe
from edgefleet.contracts import ModelCard
from edgefleet.edge.model import ModelBundle

PACKAGES = ("tflite-micro", "tensorflow", "scikit-learn")
COMMISSION_LENGTHS = (30, 50, 75, 100)
RECALL_FROM = 50  # below 50% the three configurations vibrate alike (README of the data set)
TARGETS = {"far_alarm": 0.01, "recall": 0.95}
NORMAL = 3
SECONDARY_NORMAL = 1
log = logging.getLogger(__name__)

WHY_NORMAL = {
    3: "configuration 3 ('opposite'): the weights balance each other, vibration stays low at every speed "
    "(mean per-axis std 0.04 g at 20-50%, 0.17 g at 100%); configurations 1 and 2 are imbalances whose "
    "vibration grows 10-15x faster with speed, i.e. the faults",
    1: "configuration 1 ('normal' in the data set's own naming) as a cross-check: the other two are the "
    "'faults' (configuration 3 is much quieter than it from 60% up, configuration 2 somewhat quieter)",
}


def _options(options: Mapping[str, str]) -> dict[str, Any]:
    train_speeds = fan.parse_speeds(options.get("train_speeds", ",".join(map(str, fan.DEFAULT_TRAIN_SPEEDS))))
    held_out = tuple(s for s in fan.SPEEDS if s not in train_speeds)
    speeds = fan.parse_speeds(options["speeds"]) if options.get("speeds") else held_out
    default_lengths = ",".join(map(str, COMMISSION_LENGTHS))
    lengths = tuple(int(n) for n in options.get("commission", default_lengths).split(","))
    normal = int(options.get("normal", str(NORMAL)))
    if normal not in fan.CONFIGURATIONS:
        raise fan.FanSpeedsError(f"--normal must be one of {fan.CONFIGURATIONS}")
    if overlap := sorted(set(speeds) & set(train_speeds)):
        log.warning("speeds %s are training speeds too: their figures are not held out", overlap)
    return {
        "train_speeds": train_speeds,
        "speeds": speeds,
        "lengths": lengths,
        "normal": normal,
        "backend": options.get("backend", "int8ref"),
        "recall_from": int(options.get("recall_from", str(RECALL_FROM))),
        "secondary": options.get("secondary", "true").lower() in ("1", "true", "yes")
        and not options.get("model"),
    }


def _commissioning_status(core: Any) -> dict[str, Any]:
    """What the core says about its commissioning: its mode and the baseline's scalar fields."""
    status: dict[str, Any] = {"mode": core.mode}
    baseline = core.baseline
    if dataclasses.is_dataclass(baseline):
        for f in dataclasses.fields(baseline):
            value = getattr(baseline, f.name)
            if hasattr(value, "model_dump"):  # a pydantic report (e.g. the commissioning's quality)
                status[f.name] = value.model_dump(mode="json")
            elif isinstance(value, bool | int | str) or value is None:
                status[f.name] = value
            elif isinstance(value, float | np.floating):
                status[f.name] = round(float(value), 6) if math.isfinite(value) else str(value)
    return status


def _alarms_raised(states: Sequence[str], start: int) -> int:
    """Transitions into the debounced alarm state at or after `start`."""
    return sum(
        1 for i in range(start, len(states)) if states[i] == "alarm" and (i == 0 or states[i - 1] != "alarm")
    )


def evaluate(
    bundle: ModelBundle,
    recordings: Mapping[str, np.ndarray],
    *,
    normal: int,
    speeds: Sequence[int],
    lengths: Sequence[int],
    backend: str,
    recall_from: int,
    clusters: int,
) -> list[dict[str, Any]]:
    """One row per (speed, commissioning length): a fresh device commissioned on the first windows of
    the normal recording at that speed, judged on the rest, then on the faults at that speed."""
    from edgefleet import dsp
    from edgefleet.edge.commissioning import CommissioningConfig
    from edgefleet.edge.config import DeviceConfig
    from edgefleet.edge.pipeline import DeviceCore

    card = bundle.card
    fs = card.feature_spec
    assert fs is not None and card.sensor is not None
    fcfg = dsp.FeatureConfig.from_spec(fs.sample_rate_hz, card.sensor.axes, fs.sets, fs.bands_hz)
    window, hop = fs.window, fs.hop
    skip = math.ceil(window / hop) - 1  # windows after commissioning that share samples with it
    faults = [c for c in fan.CONFIGURATIONS if c != normal]
    rows = []
    for speed in speeds:
        windows = fan.frame(recordings[fan.key(normal, speed)], window, hop)
        feats = dsp.extract(windows, fcfg).astype(np.float64)
        fault_windows = (
            {f"w{c}": fan.frame(recordings[fan.key(c, speed)], window, hop) for c in faults}
            if speed >= recall_from
            else {}
        )
        fault_feats = {name: dsp.extract(w, fcfg).astype(np.float64) for name, w in fault_windows.items()}
        for n in lengths:
            if n + skip >= len(windows):
                raise ValueError(f"commissioning on {n} windows leaves none of {len(windows)} to measure")
            config = DeviceConfig(
                device_id=f"fan-{speed}-{n}", backend=backend, commissioning=CommissioningConfig(windows=n)
            )
            core = DeviceCore(config, bundle)
            first = core.process(windows[:n])
            used = n
            while core.mode == "commissioning" and used < len(windows):  # windows the guards rejected
                first += core.process(windows[used : used + 1])
                used += 1
            commissioned = [i for i, r in enumerate(first) if r.state == "commissioning"]
            rest = core.process(windows[used:])
            measured = rest[skip:]
            m_scored = np.array([r.score is not None for r in measured])
            far_window = float(np.mean([r.anomaly for r in measured]))
            row: dict[str, Any] = {
                "speed": speed,
                "commission_windows": n,
                "measured_windows": len(measured),
                "far_window": round(far_window, 4),
                "far_alarm": round(float(np.mean([r.state == "alarm" for r in measured])), 4),
                "alarms_raised": _alarms_raised([r.state for r in rest], skip),
                "rejected_normal": int((~m_scored).sum()),
                "threshold": core.threshold,
                "commissioning": _commissioning_status(core),
            }
            ae_normal = np.array([r.score for r in measured if r.score is not None], dtype=np.float64)
            if fault_windows:
                recall, alarm, rejected, aucs, scored = {}, {}, {}, {}, {}
                for name, w in fault_windows.items():
                    res = core.process(w)
                    recall[name] = float(np.mean([r.anomaly for r in res]))
                    alarm[name] = float(np.mean([r.state == "alarm" for r in res]))
                    scored[name] = np.array([r.score is not None for r in res])
                    rejected[name] = int((~scored[name]).sum())
                    aucs[name] = fe.auc(ae_normal, np.array([r.score for r in res if r.score is not None]))
                km = fe.kmeans_at_equal_far(
                    feats[commissioned],
                    feats[used + skip :],
                    fault_feats,
                    far_window,
                    clusters=clusters,
                    normal_scored=m_scored,
                    faults_scored=scored,
                )
                row.update(
                    recall=round(float(np.mean(list(recall.values()))), 4),
                    recall_by_fault={k: round(v, 4) for k, v in recall.items()},
                    alarm_fraction_faults={k: round(v, 4) for k, v in alarm.items()},
                    rejected_faults=rejected,
                    auc=fe.mean_or_none(list(aucs.values())),
                    kmeans_recall=round(float(np.mean(list(km.recall_by_fault.values()))), 4),
                    kmeans_recall_by_fault={k: round(v, 4) for k, v in km.recall_by_fault.items()},
                    kmeans_far_window=round(km.far_window, 4),
                    kmeans_auc=fe.mean_or_none(list(km.auc_by_fault.values())),
                )
            rows.append(row)
        log.info("speed %d%%: %d commissioning lengths done", speed, len(lengths))
    return rows


def summarize(rows: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> dict[str, Any]:
    def worst(key: str, rs: Sequence[Mapping[str, Any]], *, high: bool = True) -> Mapping[str, Any] | None:
        kept = [r for r in rs if r.get(key) is not None]
        if not kept:
            return None
        return (max if high else min)(kept, key=lambda r: (r[key], -r["commission_windows"]))

    def figures(rs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        with_faults = [r for r in rs if "recall" in r]
        per_fault = [v for r in with_faults for v in r["recall_by_fault"].values()]
        km_per_fault = [v for r in with_faults for v in r["kmeans_recall_by_fault"].values()]
        return {
            "far_window": max(r["far_window"] for r in rs),
            "far_window_mean": fe.mean_or_none([r["far_window"] for r in rs]),
            "far_alarm": max(r["far_alarm"] for r in rs),
            "far_alarm_mean": fe.mean_or_none([r["far_alarm"] for r in rs]),
            "alarms_raised": sum(r["alarms_raised"] for r in rs),
            "measured_windows": sum(r["measured_windows"] for r in rs),
            "recall": fe.mean_or_none(per_fault),
            "recall_min": fe.min_or_none(per_fault),
            "auc": fe.mean_or_none([r["auc"] for r in with_faults]),
            "auc_min": fe.min_or_none([r["auc"] for r in with_faults]),
            "baseline_kmeans": {
                "far_window": max((r["kmeans_far_window"] for r in with_faults), default=None),
                "recall": fe.mean_or_none(km_per_fault),
                "recall_min": fe.min_or_none(km_per_fault),
                "auc": fe.mean_or_none([r["kmeans_auc"] for r in with_faults]),
                "auc_min": fe.min_or_none([r["kmeans_auc"] for r in with_faults]),
            },
        }

    out = figures(rows)
    out["meets_target"] = bool(
        out["far_alarm"] <= TARGETS["far_alarm"]
        and out["recall"] is not None
        and out["recall"] >= TARGETS["recall"]
    )
    out["by_commission_windows"] = {
        str(n): figures([r for r in rows if r["commission_windows"] == n]) for n in lengths
    }
    out["worst"] = {
        "far_alarm": worst("far_alarm", rows),
        "far_window": worst("far_window", rows),
        "recall": worst("recall", rows, high=False),
    }
    return out


def _run_one(
    options: Mapping[str, str], opts: Mapping[str, Any], normal: int, recordings: Mapping[str, np.ndarray]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], ModelCard]:
    from edgefleet.edge.model import load_model_dir

    directory, origin, report = fan.bench_model(options, normal, opts["train_speeds"], recordings)
    bundle = load_model_dir(directory)
    clusters = fan.train_config(normal, opts["train_speeds"]).kmeans_clusters
    rows = evaluate(
        bundle,
        recordings,
        normal=normal,
        speeds=opts["speeds"],
        lengths=opts["lengths"],
        backend=opts["backend"],
        recall_from=opts["recall_from"],
        clusters=clusters,
    )
    model = {"origin": origin, "directory": str(directory), **report}
    return summarize(rows, opts["lengths"]), rows, model, bundle.card


def run(options: Mapping[str, str]) -> dict[str, Any]:
    opts = _options(options)
    path = fan.data_path(options)
    recordings = fan.load_recordings(path)
    normal = opts["normal"]
    summary, rows, model, card = _run_one(options, opts, normal, recordings)
    fs = card.feature_spec
    assert fs is not None
    skip = math.ceil(fs.window / fs.hop) - 1
    result: dict[str, Any] = {
        "far_window": summary["far_window"],
        "far_alarm": summary["far_alarm"],
        "recall": summary["recall"],
        "recall_min": summary["recall_min"],
        "auc": summary["auc"],
        "auc_min": summary["auc_min"],
        "meets_target": summary["meets_target"],
        "targets": dict(TARGETS),
        "baseline_kmeans": {
            **summary["baseline_kmeans"],
            "clusters": fan.train_config(normal, opts["train_speeds"]).kmeans_clusters,
            "how": "ml.baseline.fit_kmeans on the same commissioning windows (standardized by their own "
            "mean and std); threshold set on the measured normal windows so that its per-window "
            "false-alarm rate equals the device's far_window on that row (equal false-alarm rate)",
        },
        "far_window_mean": summary["far_window_mean"],
        "far_alarm_mean": summary["far_alarm_mean"],
        "alarms_raised": summary["alarms_raised"],
        "measured_windows": summary["measured_windows"],
        "by_commission_windows": summary["by_commission_windows"],
        "worst": summary["worst"],
        "definitions": {
            "far_window": "worst over held-out speeds and commissioning lengths of the fraction of measured "
            "normal windows with .anomaly (score above the device's threshold, before debounce)",
            "far_alarm": "worst over the same rows of the fraction of measured normal windows in the "
            "debounced state 'alarm' (k of n anomalous windows raise it, m normal ones clear it; with "
            "windows overlapping 4x, one short knock is seen by ~4 windows and can raise it)",
            "alarms_raised": "how many times the debounced alarm was raised on measured normal windows, "
            "summed over rows (measured_windows: their total)",
            "measured": f"the normal windows after commissioning, less the first {skip} "
            "that share samples with the commissioning windows (they are processed, not counted)",
            "recall": f"mean over held-out speeds >= {opts['recall_from']}%, commissioning lengths and the "
            "two fault configurations of the fraction of their windows with .anomaly, processed by the "
            "same commissioned device after the normal windows; recall_min is the worst of those",
            "meets_target": f"far_alarm <= {TARGETS['far_alarm']} and recall >= {TARGETS['recall']}",
        },
        "assumptions": {
            "normal_configuration": normal,
            "fault_configurations": [c for c in fan.CONFIGURATIONS if c != normal],
            "why": WHY_NORMAL.get(normal, "chosen with --normal"),
            "sample_rate_hz": fs.sample_rate_hz,
            "sample_rate_note": "assumed (the data set does not say); the features do not depend on it: "
            "rms, crest, kurtosis, and bands that split 0..Nyquist evenly",
            "features": f"{len(fs.names)}: {'+'.join(fs.sets)} per axis, bands {fs.bands_hz} Hz",
            "window": fs.window,
            "hop": fs.hop,
            "windows_per_recording": fan.frame(
                recordings[fan.key(normal, fan.SPEEDS[0])], fs.window, fs.hop
            ).shape[0],
            "training_speeds": list(opts["train_speeds"]),
            "held_out_speeds": list(opts["speeds"]),
            "recall_speeds_from": opts["recall_from"],
            "commission_windows": list(opts["lengths"]),
            "backend": opts["backend"],
            "data": str(path),
        },
        "per_speed": rows,
        "model": model,
    }
    if opts["secondary"]:
        other, _, other_model, _ = _run_one(options, opts, SECONDARY_NORMAL, recordings)
        result["secondary"] = {
            "normal_configuration": SECONDARY_NORMAL,
            "why": WHY_NORMAL[SECONDARY_NORMAL],
            **{k: other[k] for k in ("far_window", "far_alarm", "recall", "recall_min", "auc", "auc_min")},
            "meets_target": other["meets_target"],
            "baseline_kmeans": other["baseline_kmeans"],
            "far_window_mean": other["far_window_mean"],
            "far_alarm_mean": other["far_alarm_mean"],
            "alarms_raised": other["alarms_raised"],
            "worst": other["worst"],
            "model": other_model,
        }
    return result
