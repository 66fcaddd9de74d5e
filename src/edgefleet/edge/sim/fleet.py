"""A fleet of simulated devices in one process: each has its own MQTT connection, id, credentials,
outbox and clock; one driver thread feeds them all at `speed` x real time."""

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass

from pydantic import SecretStr

from edgefleet.edge.clock import DeviceClock
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.device import Device
from edgefleet.edge.errors import ConfigError
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.sources.synthetic import SyntheticSource, parse_faults

log = logging.getLogger(__name__)


def parse_fleet_faults(spec: str | None) -> list[tuple[str, str]]:
    """`GLOB=FAULTS;GLOB=FAULTS`, e.g. `sim-0003=imbalance@30;*=bearing_outer@600x0.5`.

    A spec without `=` applies to every device."""
    out = []
    for part in filter(None, (p.strip() for p in (spec or "").split(";"))):
        pattern, sep, faults = part.partition("=")
        if not sep:
            pattern, faults = "*", part
        parse_faults(faults)  # validate early
        out.append((pattern.strip(), faults.strip()))
    return out


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    mode: str
    connected: bool
    windows: int
    events: int
    alarm: bool
    outbox_depth: int


class Fleet:
    def __init__(
        self,
        template: DeviceConfig,
        model: ModelBundle | None,
        count: int,
        *,
        prefix: str = "sim",
        faults: str | None = None,
        seed: int = 0,
        username_template: str | None = None,
        password_template: str | None = None,
    ) -> None:
        if count < 1:
            raise ConfigError("a fleet needs at least one device")
        fault_rules = parse_fleet_faults(faults)
        self.devices: list[Device] = []
        for i in range(count):
            device_id = f"{prefix}-{i + 1:04d}"
            mqtt = template.mqtt.model_copy(
                update={
                    "username": username_template.format(id=device_id)
                    if username_template
                    else template.mqtt.username,
                    "password": SecretStr(password_template.format(id=device_id))
                    if password_template
                    else template.mqtt.password,
                }
            )
            config = template.model_copy(update={"device_id": device_id, "mqtt": mqtt})
            device_faults = ",".join(
                f for pattern, f in fault_rules if fnmatch.fnmatchcase(device_id, pattern)
            )
            source = SyntheticSource(seed=seed + i, faults=device_faults or None)
            self.devices.append(Device(config, model, source, clock=DeviceClock(template.clock)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0.0

    def start(self, sync_clocks: bool = True) -> None:
        if sync_clocks:
            threads = [threading.Thread(target=d.clock.sync, daemon=True) for d in self.devices]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for device in self.devices:
            device.start(sync_clock=False)
        self.started = time.monotonic()

    def run(self, speed: float = 1.0, duration_s: float | None = None, tick_s: float = 0.1) -> None:
        """Feed every device its due samples until stopped or `duration_s` of stream time passed."""
        t0 = time.monotonic()
        while not self._stop.is_set():
            stream_s = (time.monotonic() - t0) * speed
            if duration_s is not None:
                stream_s = min(stream_s, duration_s)
            for device in self.devices:
                due = int(stream_s * device.core.sample_rate_hz)
                while device.samples_read < due and not self._stop.is_set():
                    device.step(min(due - device.samples_read, 1024))
            if duration_s is not None and stream_s >= duration_s:
                return
            self._stop.wait(tick_s)

    def run_in_thread(self, speed: float = 1.0, duration_s: float | None = None) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, args=(speed, duration_s), name="fleet", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def close(self, graceful: bool = True) -> None:
        """Stop the driver, then close every device at once (each says `offline` on its own link)."""
        self.stop()
        closers = [threading.Thread(target=d.close, args=(graceful,), daemon=True) for d in self.devices]
        for t in closers:
            t.start()
        for t in closers:
            t.join(15)

    def rows(self) -> list[DeviceRow]:
        return [
            DeviceRow(
                d.device_id,
                d.mode,
                bool(d.link and d.link.connected.is_set()),
                d.core.windows_seen,
                len(d.events_created),
                d.core.debouncer.active or d.core.rule_debouncer.active,
                d.outbox.depth(),
            )
            for d in self.devices
        ]

    def totals(self) -> dict[str, int]:
        rows = self.rows()
        return {
            "devices": len(rows),
            "connected": sum(r.connected for r in rows),
            "windows": sum(r.windows for r in rows),
            "events": sum(r.events for r in rows),
            "alarms": sum(r.alarm for r in rows),
            "outbox_depth": sum(r.outbox_depth for r in rows),
            "acked": sum(d.link.stats.acked for d in self.devices if d.link),
        }
