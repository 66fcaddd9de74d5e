"""A fleet of simulated devices in one process: each has its own MQTT connection, id, credentials,
outbox and clock; one driver thread feeds them all at `speed` x real time. Each is a `Device`, so
delivery is the device's: a message leaves a device's outbox when the server acknowledges it."""

import fnmatch
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from edgefleet.edge.clock import DeviceClock
from edgefleet.edge.config import DeviceConfig, OtaConfig, TrustedKey
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


def _device_ids(count: int | None, prefix: str, device_ids: Sequence[str] | None) -> list[str]:
    if device_ids is not None:
        if count is not None and count != len(device_ids):
            raise ConfigError(f"count {count} does not match the {len(device_ids)} device ids given")
        ids = list(device_ids)
        if len(set(ids)) != len(ids):
            raise ConfigError("device ids in a fleet must be unique")
    else:
        ids = [f"{prefix}-{i + 1:04d}" for i in range(count or 0)]
    if not ids:
        raise ConfigError("a fleet needs at least one device")
    return ids


def _device_ota(
    template: OtaConfig, device_id: str, trusted_keys: Sequence[TrustedKey] | None, ota_dir: Path | None
) -> OtaConfig:
    base = ota_dir or template.directory or Path(".edgefleet/ota")
    keys = {k.key_id: k for k in [*template.trusted_keys, *(trusted_keys or [])]}
    return template.model_copy(
        update={
            "enabled": template.enabled or ota_dir is not None,
            "directory": Path(base) / device_id,
            "trusted_keys": list(keys.values()),
        }
    )


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
    """Devices are `PREFIX-0001`... (`count`) or the given `device_ids`.

    MQTT credentials: `credentials[device_id] = (username, password)` wins over the templates
    (`'{id}'`-style, formatted per device), which win over the template config's.

    OTA: with `ota_dir` (or `template.ota.enabled`) each device keeps its A/B slots in
    `<ota_dir or template.ota.directory or .edgefleet/ota>/<device id>` and trusts the template's
    keys plus `trusted_keys`; it then takes updates on `ota/cmd`."""

    def __init__(
        self,
        template: DeviceConfig,
        model: ModelBundle | None,
        count: int | None = None,
        *,
        prefix: str = "sim",
        device_ids: Sequence[str] | None = None,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        faults: str | None = None,
        seed: int = 0,
        username_template: str | None = None,
        password_template: str | None = None,
        trusted_keys: Sequence[TrustedKey] | None = None,
        ota_dir: Path | None = None,
    ) -> None:
        ids = _device_ids(count, prefix, device_ids)
        fault_rules = parse_fleet_faults(faults)
        # The synthetic machine samples at the model's rate (a model trained at 400 Hz gets 400 Hz).
        spec = model.card.feature_spec if model is not None else None
        rate = spec.sample_rate_hz if spec is not None else 200.0
        self.devices: list[Device] = []
        for i, device_id in enumerate(ids):
            username, password = template.mqtt.username, template.mqtt.password
            if username_template:
                username = username_template.format(id=device_id)
            if password_template:
                password = SecretStr(password_template.format(id=device_id))
            if credentials and device_id in credentials:
                username, plain = credentials[device_id]
                password = SecretStr(plain)
            mqtt = template.mqtt.model_copy(update={"username": username, "password": password})
            config = DeviceConfig.model_validate(
                {
                    **template.model_dump(),
                    "device_id": device_id,
                    "mqtt": mqtt.model_dump(),
                    "ota": _device_ota(template.ota, device_id, trusted_keys, ota_dir).model_dump(),
                }
            )
            device_faults = ",".join(
                f for pattern, f in fault_rules if fnmatch.fnmatchcase(device_id, pattern)
            )
            source = SyntheticSource(seed=seed + i, faults=device_faults or None, sample_rate_hz=rate)
            self.devices.append(Device(config, model, source, clock=DeviceClock(template.clock)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0.0

    def start(self, sync_clocks: bool = True, stagger_s: float = 0.0) -> None:
        """Connect every device; `stagger_s` between them spreads the connects out, as a fleet
        powering up one by one does (amqtt, for one, mishandles subscriptions arriving at once)."""
        if sync_clocks:
            threads = [threading.Thread(target=d.clock.sync, daemon=True) for d in self.devices]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for i, device in enumerate(self.devices):
            if i and stagger_s > 0:
                time.sleep(stagger_s)
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
                try:
                    while device.samples_read < due and not self._stop.is_set():
                        device.step(min(due - device.samples_read, 1024))
                except Exception:  # the top of a long-running loop: one device's fault stops no other
                    log.exception("%s: step failed; it tries again next tick", device.device_id)
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
            # confirmed and deleted from the outboxes (by the server's `ack`, end to end), and
            # published again because no confirmation came in time or after a reconnect
            "acked": sum(d.link.stats.acked for d in self.devices if d.link),
            "resent": sum(d.link.stats.resent for d in self.devices if d.link),
        }
