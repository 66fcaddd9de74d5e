"""The chaos suite's fleet process: simulated devices (`edge.sim.Fleet`) at a steady rate, each
with its own MQTT connection and outbox, and a record of every (device_id, seq) stored in an outbox.

    python tests/chaos/fleet_runner.py CONFIG.json

CONFIG (written by `processes.FleetProcess`): broker URL, devices (id, password, clock offset, faults),
outbox directory, record file, telemetry interval, driver tick, MQTT settings.

The record file gets one line per message a device stored in its outbox (`outbox.put` returned a
seq), appended and flushed after the put committed: `device_id seq kind wall_time`. A process
killed between the commit and the line leaves a message stored but not recorded (counted as
`unrecorded`, never as lost). The file is appended to, so a restarted process continues it.

Protocol: one JSON line `{"ready": ..., "outbox": N}` on stdout once every device is started (N:
what a process before this one left in the outboxes), then commands on stdin, one per line:
- `drain TIMEOUT`: stop producing, keep the links running until every outbox is empty (all
  acknowledged end to end) or TIMEOUT seconds passed, print one JSON line (outbox depths, link and
  outbox counters), close every device gracefully and exit 0.
End of stdin closes the fleet without waiting. SIGTERM exits at once (the outboxes keep what they hold).
"""

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edgefleet.edge.clock import ClockConfig
from edgefleet.edge.config import DeviceConfig, MqttConfig, OutboxConfig
from edgefleet.edge.device import Device
from edgefleet.edge.sim.fleet import Fleet

log = logging.getLogger("chaos.fleet")


class Recorder:
    """Appends a line per successful `outbox.put` of each wrapped device."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.recorded = 0
        self.not_stored = 0

    def wrap(self, device: Device) -> None:
        put = device.outbox.put

        def recorded(topic: str, kind: Any, build: Any) -> int | None:
            seq = put(topic, kind, build)
            with self._lock:
                if seq is None:
                    self.not_stored += 1
                else:
                    self._file.write(f"{device.device_id} {seq} {kind} {time.time():.6f}\n")
                    self._file.flush()
                    self.recorded += 1
            return seq

        device.outbox.put = recorded  # type: ignore[method-assign]

    def close(self) -> None:
        with self._lock:
            self._file.close()


def build_fleet(config: dict[str, Any]) -> Fleet:
    template = DeviceConfig(
        device_id="template",
        telemetry_interval_s=float(config["telemetry_interval_s"]),
        mqtt=MqttConfig.model_validate({"url": config["broker"], **config["mqtt"]}),
        outbox=OutboxConfig(directory=Path(config["outbox_dir"])),
        clock=ClockConfig(enabled=False),
    )
    devices = config["devices"]
    faults = ";".join(f"{d['id']}={d['faults']}" for d in devices if d.get("faults"))
    fleet = Fleet(
        template,
        None,  # no model: degraded devices (ISO rule only) send telemetry and rule events
        device_ids=[d["id"] for d in devices],
        credentials={d["id"]: (d["id"], d["password"]) for d in devices},
        faults=faults or None,
        seed=int(config.get("seed", 0)),
    )
    for device, spec in zip(fleet.devices, devices, strict=True):
        offset = float(spec.get("clock_offset_s", 0.0))
        if offset:  # a device synced to a wrong time server: synced, and off by `offset`
            device.clock.offset_s = offset
            device.clock.synced = True
    return fleet


def summary(fleet: Fleet, recorder: Recorder, drained_s: float | None) -> dict[str, Any]:
    links = [d.link for d in fleet.devices if d.link is not None]
    drops: dict[str, int] = {}
    for device in fleet.devices:
        for (kind, reason), n in device.outbox.drops().items():
            drops[f"{kind}:{reason}"] = drops.get(f"{kind}:{reason}", 0) + n
    return {
        "depths": {d.device_id: d.outbox.depth() for d in fleet.devices},
        "drained_s": drained_s,
        "recorded": recorder.recorded,
        "not_stored": recorder.not_stored,
        "outbox_errors": sum(d.outbox.errors for d in fleet.devices),
        "dropped": drops,
        "resent": sum(link.stats.resent for link in links),
        "resend_rounds": sum(link.stats.resend_rounds for link in links),
        "acked": sum(link.stats.acked for link in links),
        "connects": sum(link.stats.connects for link in links),
        "link_errors": sum(link.stats.errors for link in links),
    }


def drain(fleet: Fleet, driver: threading.Thread, timeout_s: float) -> float | None:
    """Stop producing; wait until every outbox is empty. Seconds it took, None on timeout."""
    fleet.stop()
    driver.join(10)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(d.outbox.depth() == 0 for d in fleet.devices):
            return time.monotonic() - started
        for device in fleet.devices:
            if device.link is not None:
                device.link.notify()
        time.sleep(0.1)
    return None


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=config.get("log_level", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    fleet = build_fleet(config)
    outbox = sum(d.outbox.depth() for d in fleet.devices)  # left by a process before this one
    recorder = Recorder(Path(config["record"]))
    for device in fleet.devices:
        recorder.wrap(device)
    fleet.start(sync_clocks=False, stagger_s=float(config.get("stagger_s", 0.0)))
    driver = threading.Thread(
        target=fleet.run, kwargs={"tick_s": float(config["tick_s"])}, name="fleet", daemon=True
    )
    driver.start()
    ready = {"ready": True, "pid": os.getpid(), "devices": len(fleet.devices), "outbox": outbox}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "drain":
            drained_s = drain(fleet, driver, float(command[1]))
            print(json.dumps(summary(fleet, recorder, drained_s)), flush=True)
            break
        if command and command[0] == "stats":
            print(json.dumps(summary(fleet, recorder, None)), flush=True)
    fleet.close(graceful=True)
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
