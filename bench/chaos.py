"""Chaos: one fault at a time against the real stack and a simulated fleet; lost, duplicated, recovery."""

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from _chaos import FAULTS, SERVICE_CHECKS, CannotInjectError, ChaosOptions, run_fault

PACKAGES = ("paho-mqtt", "amqtt", "sqlalchemy", "psycopg", "uvicorn")
log = logging.getLogger("bench.chaos")
BASELINE_KEYS = ("published", "lost", "events_lost", "duplicated", "recovery_s", "drain_s")


def _one(name: str, options: ChaosOptions) -> dict[str, Any]:
    fault = FAULTS[name]
    problem = next(filter(None, (SERVICE_CHECKS[s]() for s in fault.services)), None)
    if problem is not None:
        return {"fault": name, "skipped": problem}
    log.info("chaos %s (delivery %s): %s ...", name, options.delivery, fault.what)
    with tempfile.TemporaryDirectory(prefix=f"edgefleet-chaos-{name}-") as tmp:
        try:
            result = run_fault(name, options, Path(tmp))
        except CannotInjectError as err:
            return {"fault": name, "skipped": str(err)}
        except Exception as err:  # one fault's stack failing must not cost the other rows
            log.exception("chaos %s failed", name)
            return {"fault": name, "error": f"{type(err).__name__}: {err}"[-3000:]}
    row: dict[str, Any] = {"fault": name, "what": fault.what, **result.row()}
    row["problems"] = result.problems()
    return row


def run(options: Mapping[str, str]) -> dict[str, Any]:
    """`--faults all` (default) or a comma-separated list of `FAULTS`; `--devices` (20), `--rate`
    (messages/s of the fleet, 200), `--duration_s` (how long each fault lasts, 10), `--baseline`
    (true: each fault again with `delivery: broker`, the devices' behaviour before issue 17)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    wanted = options.get("faults", "all")
    names = list(FAULTS) if wanted == "all" else [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    chaos = ChaosOptions(
        devices=int(options.get("devices", "20")),
        rate=float(options.get("rate", "200")),
        fault_s=float(options.get("duration_s", "10")),
        warmup_s=float(options.get("warmup_s", "5")),
        after_s=float(options.get("after_s", "5")),
    )
    baseline = options.get("baseline", "true").lower() in ("1", "true", "yes")
    rows = []
    for name in names:
        row = _one(name, chaos)
        if baseline and "published" in row and not FAULTS[name].wrong_clock:  # no delivery fault there
            before = _one(name, replace(chaos, delivery="broker"))
            row["baseline_delivery_broker"] = {k: before.get(k) for k in (*BASELINE_KEYS, "error")}
        rows.append(row)
    ran = [r for r in rows if "published" in r]
    return {
        "published": sum(r["published"] for r in ran),
        "lost": sum(r["lost"] for r in ran),
        "duplicated": sum(r["duplicated"] for r in ran),
        "failing": [r["fault"] for r in rows if r.get("problems") or "error" in r],
        "skipped": [r["fault"] for r in rows if "skipped" in r],
        "rows": rows,
        "devices": chaos.devices,
        "rate": chaos.rate,
        "fault_s": chaos.fault_s,
        "device_mqtt": {
            "backoff_max_s": chaos.backoff_max_s,
            "ack_timeout_s": chaos.ack_timeout_s,
            "ack_timeout_max_s": chaos.ack_timeout_max_s,
        },
    }
