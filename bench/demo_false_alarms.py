"""Demo fleet offline: false alarms of its healthy machines and delays on its faults, per margin.

Runs the demo's device template (`cli.demo.vibration.device_template`: its commissioning windows,
debounce and rule; backend `tflm` as in the demo, or `int8ref`) through `DeviceCore.process` on
the demo's simulated machines: `SyntheticSource(seed=i)` for `demo-vib-{i + 1:04d}`, as
`edge.sim.fleet.Fleet` seeds them, windowed as `edge.device.Device` does. The model is the demo's:
trained from its shipped config (`edgefleet/cli/demo/synthetic.yaml`) with the demo's own
`train_model`, cached under `.edgefleet/bench-models/demo/` (or `--model DIR`, e.g. a demo home's
`models/vibration-*`).

Healthy: every one of the `--machines` (12) runs without a fault for `--minutes` (10; 30 for the
long check); a false alarm is a raised anomaly alarm (an `anomaly` event with active=True).
Faults: each device of the demo's FAULT_SCHEDULE with its schedule; the delay is counted from
the first window holding fault samples to the window that raises the anomaly alarm.
Each is run once per `--margins` (default 1.0, the default, and 1.3, the margin the demo once had).

Options: --minutes 10, --machines 12, --margins 1.0,1.3, --backend tflm|int8ref,
--windows (commissioning windows; default the demo's), --model DIR, --cache DIR.
"""

import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ("tflite-micro", "tensorflow-cpu")
OLD_MARGIN = 1.3  # the hand-tuned margin the demo fleet used before the out-of-sample threshold
CHUNK = 1024  # samples per read, as `Fleet.run` feeds its devices at most

log = logging.getLogger(__name__)


def _demo_model(options: Mapping[str, str]) -> tuple[Any, str]:
    import _edge_models
    from edgefleet.cli.demo.models import cached_model, plan_vibration_model, train_model
    from edgefleet.edge.model import load_model_dir

    if options.get("model"):
        return load_model_dir(Path(options["model"])), f"given (--model {options['model']})"
    root = Path(options.get("cache", str(Path(".edgefleet/bench-models")))) / "demo"
    shared = Path(os.environ.get("EDGEFLEET_SHARED", "../shared"))
    # the demo's own plan and training: the shipped config, its sha256 naming the cache
    plan = plan_vibration_model(root / "models", root, shared, None)
    bundle = cached_model(plan)
    if bundle is not None:
        return bundle, f"cached demo model ({plan.directory})"
    log.warning("training the demo model into %s (cached for later runs)", plan.directory)
    with _edge_models.stdout_to_stderr():
        bundle, seconds = train_model(plan)
    return bundle, f"trained now in {seconds:.1f} s ({plan.directory})"


def _stream(core: Any, seed: int, faults: str | None, seconds: float) -> list[Any]:
    """The device's window results over `seconds` of stream time, as `Device.step` produces them."""
    from edgefleet.edge.sources.synthetic import SyntheticSource
    from edgefleet.edge.windowing import Windower

    source = SyntheticSource(seed=seed, faults=faults, sample_rate_hz=core.sample_rate_hz)
    windower = Windower(core.window, core.hop, len(source.axes))
    total = int(seconds * core.sample_rate_hz)
    read = 0
    results: list[Any] = []
    while read < total:
        chunk = source.read(min(CHUNK, total - read))
        read += len(chunk.samples)
        pairs = windower.push(chunk.samples, chunk.timestamps)
        if pairs:
            windows = np.stack([w for w, _ in pairs])
            stamps = np.stack([t for _, t in pairs])
            results += core.process(windows, stamps)
    return results


def _raises(results: list[Any], kind: str = "anomaly") -> list[int]:
    return [r.window for r in results for e in r.events if e.kind == kind and e.active]


def _report(core: Any) -> dict[str, Any]:
    b = core.baseline
    rep = b.report
    out: dict[str, Any] = {
        "threshold": round(float(b.threshold), 5),
        "score_p50_oos": None if b.score_p50 is None else round(b.score_p50, 5),
        "score_p99_oos": None if b.score_p99 is None else round(b.score_p99, 5),
    }
    if rep is not None:
        out.update(
            status=rep.status,
            method=rep.method,
            card_threshold=round(rep.card_threshold, 5),
            spread_ratio_median=rep.spread_ratio_median,
            fault_visibility=rep.fault_visibility,
        )
    return out


def _healthy(core: Any, seed: int, seconds: float) -> dict[str, Any]:
    results = _stream(core, seed, None, seconds)
    scored = [r for r in results if r.score is not None]
    scores = np.array([r.score for r in scored], dtype=np.float64)
    threshold = float(core.baseline.threshold)
    over = [r for r in scored if r.anomaly]
    raises = _raises(results)
    # how near the debounce came to raising: most anomalous windows among any n scored in a row
    k, n = core.debouncer.config.k, core.debouncer.config.n
    flags = np.array([r.anomaly for r in scored], dtype=np.int64)
    in_n = np.convolve(flags, np.ones(n, dtype=np.int64), mode="valid") if len(flags) >= n else flags
    return {
        "windows": len(results),
        "scored": len(scored),
        "anomalous_windows": len(over),
        "alarm_raises": len(raises),
        "alarm_raise_windows": raises,
        "alarm_windows": sum(r.state == "alarm" for r in results),
        "most_anomalous_in_n": int(in_n.max()) if len(in_n) else 0,
        "debounce_k_of_n": [k, n],
        "rule_raises": len(_raises(results, "rule")),
        "drift_raises": len(_raises(results, "drift")),
        "rejected": sum(r.state == "rejected" for r in results),
        "max_score": round(float(scores.max()), 5) if len(scores) else None,
        "max_score_over_threshold": round(float(scores.max()) / threshold, 4) if len(scores) else None,
        "top_anomalous": [
            {"window": r.window, "score": round(r.score, 5)} for r in sorted(over, key=lambda r: -r.score)[:5]
        ],
        "commissioning": _report(core),
    }


def _fault_delay(core: Any, seed: int, faults: str, seconds: float) -> dict[str, Any]:
    from edgefleet.edge.sources.synthetic import parse_faults

    onset_s = parse_faults(faults)[0][0]
    results = _stream(core, seed, faults, seconds)
    rate, window, hop = core.sample_rate_hz, core.window, core.hop
    # the first window whose last sample is at or after the onset holds fault samples
    first = next(i for i in range(len(results)) if (window - 1 + i * hop) / rate >= onset_s)
    raises = _raises(results)
    before = [w for w in raises if w < first]
    after = [w for w in raises if w >= first]
    out: dict[str, Any] = {
        "faults": faults,
        "onset_s": onset_s,
        "onset_window": first,
        "false_alarm_raises_before_onset": len(before),
        "raised_window": after[0] if after else None,
        "delay_windows": (after[0] - first) if after else None,
        "delay_s": round((window - 1 + after[0] * hop) / rate - onset_s, 2) if after else None,
        "alarm_raises_after_onset": len(after),
        "alarm_clears": sum(1 for r in results for e in r.events if e.kind == "anomaly" and not e.active),
        "threshold": round(float(core.baseline.threshold), 5),
    }
    return out


def run(options: Mapping[str, str]) -> dict[str, Any]:
    from edgefleet.cli.demo.vibration import COMMISSION_WINDOWS, FAULT_SCHEDULE, device_template
    from edgefleet.edge.pipeline import DeviceCore
    from edgefleet.edge.sources.synthetic import parse_faults

    minutes = float(options.get("minutes", "10"))
    machines = int(options.get("machines", "12"))
    margins = [float(m) for m in options.get("margins", f"1.0,{OLD_MARGIN}").split(",")]
    backend = options.get("backend", "tflm")
    windows = int(options.get("windows", str(COMMISSION_WINDOWS)))
    seconds = minutes * 60.0
    bundle, origin = _demo_model(options)
    with tempfile.TemporaryDirectory(prefix="demo-false-alarms-") as tmp:
        template = device_template("mqtt://127.0.0.1:1", Path(tmp) / "outbox")
    probe = DeviceCore(template.model_copy(update={"backend": backend}), bundle)
    debounce = probe.debouncer.config
    ids = [f"demo-vib-{i + 1:04d}" for i in range(machines)]
    by_margin: dict[str, Any] = {}
    t_all = time.perf_counter()
    for margin in margins:
        t0 = time.perf_counter()
        commissioning = template.commissioning.model_copy(update={"windows": windows, "margin": margin})
        base = template.model_copy(update={"backend": backend, "commissioning": commissioning})

        def core_for(device_id: str, base: Any = base) -> DeviceCore:
            return DeviceCore(base.model_copy(update={"device_id": device_id}), bundle)

        healthy = {d: _healthy(core_for(d), seed, seconds) for seed, d in enumerate(ids)}
        faults = {
            d: _fault_delay(core_for(d), ids.index(d), spec, seconds)
            for d, spec in FAULT_SCHEDULE
            if d in ids and parse_faults(spec)[0][0] < seconds
        }
        by_margin[f"{margin:g}"] = {
            "false_alarms": sum(h["alarm_raises"] for h in healthy.values()),
            "anomalous_windows": sum(h["anomalous_windows"] for h in healthy.values()),
            "scored_windows": sum(h["scored"] for h in healthy.values()),
            "machines_with_false_alarms": [d for d, h in healthy.items() if h["alarm_raises"]],
            "most_anomalous_in_n": max(h["most_anomalous_in_n"] for h in healthy.values()),
            "worst_max_score_over_threshold": max(
                h["max_score_over_threshold"] for h in healthy.values() if h["max_score_over_threshold"]
            ),
            "rule_raises_healthy": sum(h["rule_raises"] for h in healthy.values()),
            "drift_raises_healthy": sum(h["drift_raises"] for h in healthy.values()),
            "fault_delay_windows": {d: f["delay_windows"] for d, f in faults.items()},
            "fault_delay_s": {d: f["delay_s"] for d, f in faults.items()},
            "faults_caught": sum(f["raised_window"] is not None for f in faults.values()),
            "faults": faults,
            "healthy": healthy,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return {
        "false_alarms": {m: v["false_alarms"] for m, v in by_margin.items()},
        "anomalous_windows": {m: v["anomalous_windows"] for m, v in by_margin.items()},
        "fault_delay_windows": {m: v["fault_delay_windows"] for m, v in by_margin.items()},
        "by_margin": by_margin,
        "setup": {
            "machines": machines,
            "minutes": minutes,
            "backend": backend,
            "commission_windows": windows,
            "window": probe.window,
            "hop": probe.hop,
            "decision": template.decision.model_dump(),
            "debounce_in_hops": {"k": debounce.k, "n": debounce.n, "m": debounce.m},
            "confidence": template.commissioning.confidence,
            "target_far": round(probe.commissioner.card_target_far, 6),
            "seeds": f"0-{machines - 1} (Fleet: seed + index)",
            "false_alarm": "an anomaly event with active=True on a machine without a fault; "
            "anomalous_windows: windows scored over the threshold (before the debounce)",
            "delay": "windows (hops) from the first window holding fault samples to the alarm raise",
        },
        "model": origin,
        "run_s": round(time.perf_counter() - t_all, 1),
    }
