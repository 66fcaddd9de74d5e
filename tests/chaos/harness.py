"""Chaos harness: the real stack in separate processes, one fault, and an exact count of what was lost.

A run (`run_fault`): a private Mosquitto configured with the documented `BROKER_SETTINGS` (or the
server's embedded broker), a fresh PostgreSQL database (or a SQLite file), an `edgefleet server`
process, and a fleet process (`fleet_runner.py`) of simulated devices at a steady rate that records
every (device_id, seq) it stores in an outbox. After a warm-up the fault is injected, held, and
undone (`fault_end`); the fleet runs on a little, then stops producing and waits (bounded) until
every outbox is empty, i.e. everything was acknowledged end to end. Then, against the database:

- `published`: messages recorded in an outbox; `stored`: those stored (events, telemetry, sampled
  windows; OTA states are not kept by seq on the server, and the fleet runs without OTA);
  `lost`: recorded, not stored;
- `duplicated`: rows beyond the first per (device_id, seq) (the unique constraints make it 0);
- `recovery_s`: from `fault_end` to the first message stored after it; `drain_s`: from `fault_end`
  until everything recorded up to `fault_end` is stored (stored-at is when the monitor first saw
  the row, polling every 0.25 s).

Shared by the suite (`tests/chaos/test_*.py`) and `edgefleet bench chaos`; imports no pytest.
"""

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.chaos.faults import FAULTS, wrong_clock_checks, wrong_clock_figures
from tests.chaos.processes import CannotInjectError
from tests.chaos.stack import ChaosOptions, Fault, Stack

__all__ = ["FAULTS", "CannotInjectError", "ChaosOptions", "ChaosResult", "Fault", "run_fault"]

log = logging.getLogger("chaos")


@dataclass
class ChaosResult:
    fault: str
    db: str
    broker: str
    published: int
    stored: int
    lost: int
    duplicated: int
    recovery_s: float | None
    drain_s: float | None
    fault_s: float
    events_published: int
    events_lost: int
    published_during_fault: int
    outbox_at_restart: int | None
    """Messages the restarted fleet process found in its outboxes (sent again); None: started once."""
    unrecorded: int
    """Stored, not in the record: a fleet process killed between an outbox commit and its record line."""
    outbox_left: int
    """Messages still in the outboxes when the drain gave up (not acknowledged end to end)."""
    resent: int
    ingest_duplicates: float | None
    outbox_errors: int
    dropped: dict[str, int]
    server_starts: int
    fleet_starts: int
    server_tracebacks: int
    rate_per_s: float
    """Published over the time from the first to the last record (the fault's time included)."""
    recovery_bound_s: float | None = None
    drain_bound_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    """The fault's own expectations that failed (e.g. the full disk caused no storage error)."""
    lost_sample: list[tuple[str, int]] = field(default_factory=list)
    logs: str = ""

    def row(self) -> dict[str, Any]:
        """The figures (no logs), for the benchmark's JSON."""
        out = asdict(self)
        out.pop("logs")
        out["lost_sample"] = [f"{d}:{s}" for d, s in self.lost_sample]
        return out

    def problems(self) -> list[str]:
        """What breaks the delivery guarantee or the recovery bounds ([] when nothing)."""
        out = []
        if self.lost:
            out.append(f"lost {self.lost} of {self.published} ({self.events_lost} events)")
        if self.duplicated:
            out.append(f"{self.duplicated} stored twice")
        if self.outbox_left:
            out.append(f"{self.outbox_left} never acknowledged (left in the outboxes)")
        for name, value, bound in (
            ("recovery_s", self.recovery_s, self.recovery_bound_s),
            ("drain_s", self.drain_s, self.drain_bound_s),
        ):
            if bound is not None and (value is None or value > bound):
                out.append(f"{name} {value} over its bound {bound}")
        return out + self.checks

    def describe(self) -> str:
        figures = {k: v for k, v in self.row().items() if k not in ("lost_sample",)}
        return f"{figures}\nlost (sample): {self.row()['lost_sample']}\n{self.logs}"


def _wait_flowing(stack: Stack, warmup_s: float) -> None:
    """At least `warmup_s`, and until the server stored something."""
    time.sleep(warmup_s)
    deadline = time.monotonic() + 30
    while not stack.monitor.seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing was stored within {warmup_s + 30:.0f} s\n{stack.logs()}")
        time.sleep(0.2)


def run_fault(name: str, options: ChaosOptions, workdir: Path) -> ChaosResult:
    """Run the stack, inject fault `name`, count. Raises `CannotInjectError` when it cannot be injected."""
    fault = FAULTS[name]
    with Stack(fault, options, workdir) as stack:
        _wait_flowing(stack, options.warmup_s)
        fault_start = time.time()
        log.info("chaos %s: injecting", name)
        fault.inject(stack)
        if fault.hold is not None:
            fault.hold(stack)
        else:
            time.sleep(options.fault_s)
        fault_end = time.time()  # the fault ends when the harness starts undoing it
        fault.restore(stack)
        log.info("chaos %s: restored after %.1f s", name, fault_end - fault_start)
        time.sleep(options.after_s)
        summary = stack.fleet.drain(options.drain_timeout_s)
        stack.monitor.stop()
        stack.monitor.poll()
        ingest_duplicates = stack.server.metric("edgefleet_ingest_duplicates_total")
        extra = wrong_clock_figures(stack) if fault.wrong_clock else {}
        result = _count(stack, fault_start, fault_end, summary)
        result = replace(result, ingest_duplicates=ingest_duplicates, extra=extra, logs=stack.logs())
        return replace(result, checks=_checks(result, options))


def _checks(result: ChaosResult, options: ChaosOptions) -> list[str]:
    """Did the fault happen as meant (a test that injects nothing proves nothing)?"""
    out = []
    if result.published < options.rate * options.warmup_s / 2:
        out.append(f"the fleet published only {result.published} messages")
    fault = FAULTS[result.fault]
    if fault.disk and not any(k.endswith(":write_error") for k in result.dropped):
        out.append("the full disk caused no storage error: the fault did not bite")
    if fault.name == "device-kill" and (result.fleet_starts != 2 or not result.outbox_at_restart):
        out.append(f"the kill left nothing in the outboxes to send again ({result.fleet_starts} starts)")
    if fault.wrong_clock:
        out += wrong_clock_checks(result.extra, options.alarm_clear_after_s)
    return out


def _count(stack: Stack, fault_start: float, fault_end: float, summary: dict[str, Any]) -> ChaosResult:
    records = stack.fleet.records()
    stored = stack.monitor.stored()
    seen = stack.monitor.seen
    lost = sorted(k for k in records if k not in stored)
    after = [t for t in seen.values() if t >= fault_end]
    backlog = [seen[k] for k, (_, t) in records.items() if t <= fault_end and k in seen]
    events = [k for k, (kind, _) in records.items() if kind == "event"]
    times = [t for _, t in records.values()]
    server_log = stack.server.log_text()
    fault = stack.fault
    return ChaosResult(
        fault=fault.name,
        db=fault.db,
        broker=fault.broker + ("" if fault.shared or fault.broker == "embedded" else " (not shared)"),
        published=len(records),
        stored=len(records) - len(lost),
        lost=len(lost),
        duplicated=sum(n - 1 for n in stored.values()),
        recovery_s=None if fault.wrong_clock or not after else round(min(after) - fault_end, 2),
        drain_s=None if fault.wrong_clock or not backlog else round(max(0.0, max(backlog) - fault_end), 2),
        fault_s=round(fault_end - fault_start, 2),
        events_published=len(events),
        events_lost=sum(1 for k in events if k not in stored),
        published_during_fault=sum(1 for _, t in records.values() if fault_start <= t <= fault_end),
        outbox_at_restart=stack.fleet.ready[-1].get("outbox") if stack.fleet.starts > 1 else None,
        unrecorded=len(set(stored) - set(records)),
        outbox_left=sum(summary.get("depths", {}).values()),
        resent=int(summary.get("resent", 0)),
        ingest_duplicates=None,
        outbox_errors=int(summary.get("outbox_errors", 0)),
        dropped=dict(summary.get("dropped", {})),
        server_starts=stack.server.starts,
        fleet_starts=stack.fleet.starts,
        server_tracebacks=server_log.count("Traceback"),
        rate_per_s=round(len(records) / max(1e-3, max(times) - min(times)), 1) if times else 0.0,
        recovery_bound_s=fault.recovery_bound_s,
        drain_bound_s=fault.drain_bound_s,
        lost_sample=lost[:10],
    )
