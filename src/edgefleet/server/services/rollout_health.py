"""Health of a device during a rollout: its telemetry before the update against after it.

A device's baseline is the windows-weighted anomaly rate and reject rate of its last scoring
(mode `running`) telemetry reports before the command was sent. After it reports UPDATED, the
reports that arrive later (by row id, so device clocks do not matter) must not show an anomaly
rate or reject rate above the baseline plus a margin, a restart (uptime going backwards), or
another model version in the latest report. Reports while the device re-commissions its baseline
on the new model carry no rates; the gate needs at least one scoring report.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefleet.server.db.models import TelemetryRow


@dataclass(frozen=True)
class HealthLimits:
    anomaly_margin: float = 0.1
    reject_margin: float = 0.05
    baseline_samples: int = 20


@dataclass(frozen=True)
class Verdict:
    samples: int
    """Telemetry reports since the gate started from a device that was scoring (mode `running`,
    not re-commissioning its baseline after the switch)."""
    problem: str | None = None
    """Why the device is unhealthy; None while it is healthy."""


@dataclass(frozen=True)
class _Rates:
    anomaly_rate: float | None
    reject_rate: float | None


def _rates(rows: Sequence[TelemetryRow]) -> _Rates:
    """Windows-weighted anomaly rate and rejects per window (rejected + processed) over `rows`."""
    windows = sum(r.windows for r in rows)
    anomalous = sum((r.anomaly_rate or 0.0) * r.windows for r in rows if r.anomaly_rate is not None)
    scored = sum(r.windows for r in rows if r.anomaly_rate is not None)
    rejects = sum(_rejects(r) for r in rows)
    return _Rates(
        anomalous / scored if scored else None,
        rejects / (windows + rejects) if windows + rejects else None,
    )


def _rejects(row: TelemetryRow) -> int:
    rejected = row.data.get("rejected") if isinstance(row.data, dict) else None
    if not isinstance(rejected, dict):
        return 0
    return sum(v for v in rejected.values() if isinstance(v, int))


def last_telemetry_id(session: Session, device_id: str) -> int:
    return int(
        session.scalar(select(func.max(TelemetryRow.id)).where(TelemetryRow.device_id == device_id)) or 0
    )


def baseline(session: Session, device_id: str, samples: int) -> dict[str, Any]:
    """The device's recent telemetry summary, stored with the rollout device when the command is sent."""
    rows = list(
        session.scalars(
            select(TelemetryRow)
            .where(TelemetryRow.device_id == device_id)
            .order_by(TelemetryRow.id.desc())
            .limit(samples)
        )
    )
    rates = _rates([r for r in rows if r.mode == "running"])
    return {
        "anomaly_rate": rates.anomaly_rate,
        "reject_rate": rates.reject_rate,
        "samples": len(rows),
        "last_id": rows[0].id if rows else 0,
    }


def evaluate(
    session: Session, device_id: str, base: dict[str, Any], limits: HealthLimits, model_version: str
) -> Verdict:
    """Judge the telemetry the device sent after row id `base["gate_after_id"]` (set when the gate
    started) against the rates in `base`."""
    rows = list(
        session.scalars(
            select(TelemetryRow)
            .where(TelemetryRow.device_id == device_id, TelemetryRow.id > int(base.get("gate_after_id") or 0))
            .order_by(TelemetryRow.seq)
        )
    )
    if not rows:
        return Verdict(0)
    scoring = sum(r.mode == "running" for r in rows)
    for earlier, later in itertools.pairwise(rows):
        if later.uptime_s < earlier.uptime_s:
            return Verdict(scoring, f"restarted (uptime {earlier.uptime_s:.0f} s -> {later.uptime_s:.0f} s)")
    latest = rows[-1].data.get("model_version")  # (a late report from before the switch is no harm)
    if latest is not None and latest != model_version:
        return Verdict(scoring, f"reports model version {latest}, not {model_version}")
    rates = _rates([r for r in rows if r.mode == "running"])
    allowed = (base.get("anomaly_rate") or 0.0) + limits.anomaly_margin
    if rates.anomaly_rate is not None and rates.anomaly_rate > allowed:
        return Verdict(scoring, f"anomaly rate {rates.anomaly_rate:.3f} above {allowed:.3f}")
    allowed = (base.get("reject_rate") or 0.0) + limits.reject_margin
    if rates.reject_rate is not None and rates.reject_rate > allowed:
        return Verdict(scoring, f"reject rate {rates.reject_rate:.3f} above {allowed:.3f}")
    return Verdict(scoring)
