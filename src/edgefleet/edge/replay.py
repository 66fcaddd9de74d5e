"""Offline replay: run the device loop over a recording and describe every window's decision."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.pipeline import DeviceCore
from edgefleet.edge.sources import SampleSource
from edgefleet.edge.windowing import Windower


def replay(
    model: ModelBundle | None, source: SampleSource, config: DeviceConfig, chunk: int = 4096
) -> Iterator[dict[str, Any]]:
    """Yield one record per window (`window`, `score`, `threshold`, `state`, `anomaly`, `rejected`),
    then a `summary` record."""
    core = DeviceCore(config, model)
    if len(source.axes) != len(core.sensor.axes):
        from edgefleet.edge.errors import SourceError

        raise SourceError(
            f"the recording has {len(source.axes)} axes; the model expects "
            f"{len(core.sensor.axes)} ({', '.join(core.sensor.axes)})"
        )
    windower = Windower(core.window, core.hop, len(source.axes))
    states: Counter[str] = Counter()
    events: Counter[str] = Counter()
    scores: list[float] = []
    while (part := source.read(chunk)) is not None:
        pairs = windower.push(part.samples, part.timestamps)
        if not pairs:
            continue
        results = core.process(np.stack([w for w, _ in pairs]), np.stack([t for _, t in pairs]))
        for result in results:
            states[result.state] += 1
            if result.score is not None:
                scores.append(result.score)
            for event in result.events:
                if event.active:
                    events[event.kind] += 1
            record = result.as_record()
            if result.events:
                record["events"] = [f"{e.kind}:{'on' if e.active else 'off'}" for e in result.events]
            yield record
    scored = len(scores)
    yield {
        "summary": {
            "windows": core.windows_seen,
            "scored": scored,
            "anomalies": int(sum(np.asarray(scores) > core.baseline.threshold)) if scored else 0,
            "anomaly_rate": float(np.mean(np.asarray(scores) > core.baseline.threshold)) if scored else None,
            "alarm_windows": states["alarm"],
            "states": dict(states),
            "events_raised": dict(events),
            "rejected": dict(core.rejects.total),
            "threshold": core.threshold,
            "commissioned": core.baseline.commissioned,
            "commissioning": (
                core.baseline.report.model_dump(mode="json", exclude_none=True)
                if core.baseline.report
                else None
            ),
            "mode": core.mode,
        }
    }
