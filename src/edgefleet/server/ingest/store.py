"""The database side of ingest: one transaction per batch, idempotent on (device_id, seq)."""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import (
    Channel,
    ContractError,
    DeviceMessage,
    Event,
    Message,
    OtaState,
    SchemaVersionError,
    Status,
    Telemetry,
    TopicAddress,
    TopicError,
    WindowSample,
    decode_topic,
    parse_topic,
)
from edgefleet.server.db.models import (
    Device,
    EventRow,
    TelemetryHourly,
    TelemetryRow,
    WindowSampleRow,
    received_day_of,
)
from edgefleet.server.ingest import pg_bulk
from edgefleet.server.ingest import samples as window_samples
from edgefleet.server.services import rollouts
from edgefleet.server.services.alarms import AlarmChange, AlarmTracker, IncomingEvent
from edgefleet.server.services.drift import DriftLimits, DriftWatch

log = logging.getLogger(__name__)
DEVICE_CACHE_TTL_S = 30.0
LAST_SEEN_RESOLUTION_S = 1.0
"""`devices.last_seen` is rewritten at most this often per device: one UPDATE per device and second,
not one per batch (at thousands of messages a second that UPDATE was a fifth of the writer's time)."""
_EVENTS = cast(Table, EventRow.__table__)
_DEVICES = cast(Table, Device.__table__)
ACKED_CHANNELS = frozenset((Channel.EVENT, Channel.TELEMETRY, Channel.SAMPLE, Channel.OTA_STATE))
"""What a device keeps in its outbox until the server acknowledges it on `ack`. Not `status`: devices
publish it beside the outbox (retained, and as the broker's last will), so nobody waits for its ack."""
_MAX_SEQ = 2**53
_MAX_REFUSED_PAYLOAD = 1 << 20


Decoded = tuple[TopicAddress, Message] | ContractError


@dataclass(frozen=True)
class Received:
    """One message as taken from the broker; `decoded` when the receiving thread validated it already."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    decoded: Decoded | None = field(default=None, compare=False, repr=False)

    @classmethod
    def validated(cls, topic: str, payload: bytes, mid: int = 0, qos: int = 0) -> "Received":
        """Validate on the receiving thread, so the writer's database round trips overlap with it."""
        return cls(topic, payload, mid, qos, decoded=_decode(topic, payload))


def _decode(topic: str, payload: bytes) -> Decoded:
    try:
        return decode_topic(topic, payload)
    except ContractError as err:
        return err


@dataclass
class WriteResult:
    accepted: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    notifications: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    """(org_id, type, data) to publish on the hub after commit."""
    device_time: dict[str, int] = field(default_factory=dict)
    """Newly stored events and telemetry by device-time flag: unsynced, future, past."""
    done: dict[str, list[int]] = field(default_factory=dict)
    """device id -> seqs (of `ACKED_CHANNELS`) done with once this batch commits: stored, stored before,
    or refused as bad data of a known device. What the ingest acknowledges on `ack` after the commit."""

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def done_with(self, device_id: str, seq: int) -> None:
        self.done.setdefault(device_id, []).append(seq)


@dataclass(frozen=True)
class _DeviceInfo:
    org_id: int
    revoked: bool
    loaded: float
    kind: str = "vibration"


class IngestStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        alarm_cooldown_s: float = 600.0,
        on_reject: Callable[[str, str, str], None] | None = None,
        drift_limits: DriftLimits | None = None,
        sample_keep_per_device: int = 200,
    ) -> None:
        self._sessions = sessions
        self._sample_keep = sample_keep_per_device
        self._cooldown = alarm_cooldown_s
        self._drift = DriftWatch(drift_limits, alarm_cooldown_s)
        self._devices: dict[str, _DeviceInfo | None] = {}
        self._device_loaded: dict[str, float] = {}
        self._last_seen_written: dict[str, datetime] = {}
        self._on_reject = on_reject
        dialect = sessions.kw["bind"].dialect.name
        self._postgres = dialect == "postgresql"
        self._insert: Callable[[Any], Any] = sqlite.insert if dialect == "sqlite" else postgresql.insert

    def invalidate_devices(self) -> None:
        self._devices.clear()
        self._device_loaded.clear()
        self._last_seen_written.clear()

    def _device(self, session: Session, device_id: str) -> _DeviceInfo | None:
        now = time.monotonic()
        if device_id in self._devices and now - self._device_loaded[device_id] < DEVICE_CACHE_TTL_S:
            return self._devices[device_id]
        row = session.execute(
            select(Device.org_id, Device.revoked_at, Device.kind).where(Device.id == device_id)
        ).first()
        info = _DeviceInfo(row.org_id, row.revoked_at is not None, now, row.kind) if row else None
        self._devices[device_id] = info
        self._device_loaded[device_id] = now
        return info

    def _rejected(self, result: WriteResult, reason: str, topic: str, detail: str) -> None:
        result.reject(reason)
        if self._on_reject:
            self._on_reject(reason, topic, detail)

    def write(self, batch: list[Received]) -> WriteResult:
        """Validate and store a batch in one transaction; raises only on database errors."""
        result = WriteResult()
        with self._sessions() as session, session.begin():
            events: list[dict[str, Any]] = []
            telemetry: list[dict[str, Any]] = []
            statuses: list[tuple[int, Status | OtaState]] = []
            samples: list[dict[str, Any]] = []
            seen: dict[str, datetime] = {}
            for item in batch:
                decoded = item.decoded if item.decoded is not None else _decode(item.topic, item.payload)
                if isinstance(decoded, ContractError):
                    self._rejected(result, decoded.reason, item.topic, str(decoded))
                    self._refused(session, result, item, decoded)
                    continue
                address, message = decoded
                device = self._device(session, address.device_id)
                if device is None or device.revoked:
                    reason = "unknown_device" if device is None else "revoked_device"
                    self._rejected(result, reason, item.topic, f"device {address.device_id!r}")
                    continue
                seen[address.device_id] = item.received_at
                if address.channel in ACKED_CHANNELS:  # device messages, by the channel's schema
                    result.done_with(address.device_id, cast(DeviceMessage, message).seq)
                channel = address.channel.value
                result.accepted[channel] = result.accepted.get(channel, 0) + 1
                result.latencies_s.append(max(0.0, (item.received_at - message.ts).total_seconds()))
                if isinstance(message, Event):
                    events.append(_event_row(device.org_id, message, item.received_at))
                elif isinstance(message, Telemetry):
                    telemetry.append(_telemetry_row(device.org_id, message, item.received_at))
                elif isinstance(message, Status | OtaState):
                    statuses.append((device.org_id, message))
                elif isinstance(message, WindowSample):
                    samples.append(
                        window_samples.sample_row(device.org_id, device.kind, message, item.received_at)
                    )
                else:  # a command echoed on a device topic: not ours to store
                    self._rejected(result, "wrong_direction", item.topic, "server -> device channel")
            if events:
                self._store_events(session, events, result)
            if telemetry:
                self._store_telemetry(session, telemetry, result)
            if samples:
                self._store_samples(session, samples, result)
            self._store_statuses(session, statuses, result)
            last_seen = self._last_seen_due(seen)
            self._store_last_seen(session, last_seen)
        self._last_seen_written.update(last_seen)  # only once committed
        return result

    def _refused(self, session: Session, result: WriteResult, item: Received, error: ContractError) -> None:
        """Bad data of a known device is done with too: resending it cannot help. Not a schema version
        this server does not speak yet: an upgraded server can store it."""
        refused = _refused_seq(item, error)
        if refused is not None:
            device = self._device(session, refused[0])
            if device is not None and not device.revoked:
                result.done_with(*refused)

    def _last_seen_due(self, seen: dict[str, datetime]) -> dict[str, datetime]:
        written = self._last_seen_written
        resolution = timedelta(seconds=LAST_SEEN_RESOLUTION_S)
        return {
            device: at
            for device, at in seen.items()
            if device not in written or at - written[device] >= resolution or at < written[device]
        }

    @staticmethod
    def _store_last_seen(session: Session, seen: dict[str, datetime]) -> None:
        if seen:
            session.connection().execute(
                update(_DEVICES)
                .where(_DEVICES.c.id == bindparam("device"))
                .values(last_seen=bindparam("seen")),
                [{"device": d, "seen": t} for d, t in seen.items()],
            )

    def _store_events(self, session: Session, rows: list[dict[str, Any]], result: WriteResult) -> None:
        received = len(rows)
        rows = _unique(rows)
        if self._postgres:  # ingest workers side by side: one opens a device's alarm, the other sees
            # it; and taken before the insert, a resend received on a later day waits for the
            # transaction of a first copy still open, then its NOT EXISTS sees that copy
            pg_bulk.lock_devices(session.connection(), {row["device_id"] for row in rows})
        inserted = {(r.device_id, r.seq): r.id for r in self._insert_many(session, EventRow, rows)}
        result.stored["event"] = len(inserted)
        result.duplicates += received - len(inserted)
        tracker = AlarmTracker(session, self._cooldown)
        links: list[dict[str, int]] = []
        changes: list[AlarmChange] = []
        for row in rows:
            event_id = inserted.get((row["device_id"], row["seq"]))
            if event_id is None:
                continue
            incoming = IncomingEvent(
                row["org_id"],
                row["device_id"],
                row["kind"],
                row["active"],
                row["severity"],
                row["ts"],
                received_at=row["received_at"],  # alarm timing runs on the server's clock
            )
            _count_device_time(result, row)
            alarm_id, change = tracker.apply(incoming)
            if alarm_id is not None:
                links.append({"event_id": event_id, "alarm": alarm_id, "day": row["received_day"]})
                row["alarm_id"] = alarm_id
            if change is not None:
                changes.append(change)
            result.notifications.append((row["org_id"], "event", _event_json(event_id, row)))
        if links:  # by id and day: PostgreSQL reads one partition, not every one
            statement = update(_EVENTS).where(
                _EVENTS.c.id == bindparam("event_id"), _EVENTS.c.received_day == bindparam("day")
            )
            session.connection().execute(statement.values(alarm_id=bindparam("alarm")), links)
        session.flush()
        latest: dict[int, AlarmChange] = {}  # one notification per alarm per batch; "opened" wins
        for change in changes:
            if change.alarm.id not in latest or change.change == "opened":
                latest[change.alarm.id] = change
        for change in latest.values():
            data = {"change": change.change, "notify": change.notify, **_alarm_json(change)}
            result.notifications.append((change.alarm.org_id, "alarm", data))

    def _store_samples(self, session: Session, rows: list[dict[str, Any]], result: WriteResult) -> None:
        received = len(rows)
        rows = _unique(rows)
        inserted = {(r.device_id, r.seq) for r in self._insert_many(session, WindowSampleRow, rows)}
        result.stored["sample"] = len(inserted)
        result.duplicates += received - len(inserted)
        window_samples.keep_latest(session, {device for device, _ in inserted}, self._sample_keep)

    def _insert_many(
        self,
        session: Session,
        table: type[EventRow | TelemetryRow | WindowSampleRow],
        rows: list[dict[str, Any]],
    ) -> Any:
        """INSERT .. ON CONFLICT DO NOTHING RETURNING as one cached statement executed for many rows
        (SQLAlchemy batches it into multi-row VALUES: "insertmanyvalues")."""
        core = cast(Table, table.__table__)
        if self._postgres:
            return pg_bulk.insert_new(session.connection(), core, rows)
        statement = self._insert(core).on_conflict_do_nothing(index_elements=["device_id", "seq"])
        returning = statement.returning(core.c.id, core.c.device_id, core.c.seq)
        return session.connection().execute(returning, rows).all()

    def _store_telemetry(self, session: Session, rows: list[dict[str, Any]], result: WriteResult) -> None:
        received = len(rows)
        rows = _unique(rows)
        inserted = {(r.device_id, r.seq) for r in self._insert_many(session, TelemetryRow, rows)}
        result.stored["telemetry"] = len(inserted)
        result.duplicates += received - len(inserted)
        hours: dict[tuple[str, datetime], dict[str, Any]] = {}
        for row in rows:
            if (row["device_id"], row["seq"]) not in inserted:
                continue
            _count_device_time(result, row)
            hour = row["ts"].replace(minute=0, second=0, microsecond=0)
            acc = hours.setdefault(
                (row["device_id"], hour),
                {
                    "device_id": row["device_id"],
                    "hour": hour,
                    "org_id": row["org_id"],
                    "samples": 0,
                    "windows": 0,
                    "anomalous_windows": 0.0,
                    "score_max": None,
                    "inference_us_sum": 0.0,
                    "inference_samples": 0,
                    "detections_per_hour_max": None,
                },
            )
            acc["samples"] += 1
            acc["windows"] += row["windows"]
            acc["anomalous_windows"] += (row["anomaly_rate"] or 0.0) * row["windows"]
            acc["score_max"] = _max(acc["score_max"], row["score_max"])
            if row["inference_us"] is not None:
                acc["inference_us_sum"] += row["inference_us"]
                acc["inference_samples"] += 1
            acc["detections_per_hour_max"] = _max(acc["detections_per_hour_max"], row["detections_per_hour"])
        for acc in hours.values():
            self._upsert_rollup(session, acc)
        fresh = [r for r in rows if (r["device_id"], r["seq"]) in inserted]
        result.notifications.extend(self._drift.observe(session, fresh))  # drift alarms (services/drift)

    def _upsert_rollup(self, session: Session, acc: dict[str, Any]) -> None:
        statement = self._insert(TelemetryHourly).values(acc)
        table = TelemetryHourly.__table__
        statement = statement.on_conflict_do_update(
            index_elements=["device_id", "hour"],
            set_={
                "samples": table.c.samples + statement.excluded.samples,
                "windows": table.c.windows + statement.excluded.windows,
                "anomalous_windows": table.c.anomalous_windows + statement.excluded.anomalous_windows,
                "inference_us_sum": table.c.inference_us_sum + statement.excluded.inference_us_sum,
                "inference_samples": table.c.inference_samples + statement.excluded.inference_samples,
            },
        )
        session.execute(statement)
        if acc["score_max"] is not None or acc["detections_per_hour_max"] is not None:
            row = session.get(TelemetryHourly, (acc["device_id"], acc["hour"]))
            if row is not None:
                row.score_max = _max(row.score_max, acc["score_max"])
                row.detections_per_hour_max = _max(
                    row.detections_per_hour_max, acc["detections_per_hour_max"]
                )

    def _store_statuses(
        self,
        session: Session,
        statuses: list[tuple[int, Status | OtaState]],
        result: WriteResult,
    ) -> None:
        """Apply status/OTA messages in arrival order."""
        for org_id, message in statuses:
            device = session.get(Device, message.device_id)
            if device is None:
                continue
            if isinstance(message, Status):
                was_online = device.online
                device.online = message.state == "online"
                device.mode = message.mode or device.mode
                device.firmware_version = message.firmware_version
                device.model_id = message.model_id or device.model_id
                device.model_version = message.model_version or device.model_version
                if was_online != device.online:
                    result.notifications.append(
                        (
                            org_id,
                            "device",
                            {"device_id": device.id, "online": device.online, "mode": device.mode},
                        )
                    )
            else:
                device.ota_state = message.state
                if message.state == "UPDATED" and message.model_version:
                    device.model_id = message.model_id or device.model_id
                    device.model_version = message.model_version
                result.notifications.append(
                    (org_id, "device", {"device_id": device.id, "ota_state": message.state})
                )
                result.notifications.extend(rollouts.on_ota_state(session, org_id, message))


def _refused_seq(item: Received, error: ContractError) -> tuple[str, int] | None:
    """(device id, seq) of a refused message when its topic names a device on an acknowledged channel
    and its payload is a JSON object with a valid `seq`."""
    if isinstance(error, SchemaVersionError) or len(item.payload) > _MAX_REFUSED_PAYLOAD:
        return None
    try:
        address = parse_topic(item.topic)
        data = json.loads(item.payload)
    except (TopicError, ValueError, RecursionError):
        return None
    seq = data.get("seq") if isinstance(data, dict) else None
    if address.channel not in ACKED_CHANNELS or type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        return None
    return address.device_id, seq


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats inside one batch (a multi-row insert cannot conflict with itself on PostgreSQL)."""
    return list({(r["device_id"], r["seq"]): r for r in reversed(rows)}.values())[::-1]


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


FUTURE_S = 300.0
"""A device time more than this ahead of the server's receipt is flagged `future`."""
PAST_S = 86_400.0
"""A device time more than this before the server's receipt is flagged `past` (a wrong clock, or a
backlog older than a day: either way the device time is not the time it arrived)."""


def _device_time(message: Event | Telemetry, received_at: datetime) -> dict[str, Any]:
    """The device's time is data: kept, and flagged when the device or its distance from the server's
    receive time says it cannot be trusted."""
    ahead = (message.ts - received_at).total_seconds()
    flag = "future" if ahead > FUTURE_S else "past" if ahead < -PAST_S else None
    return {"clock_synced": message.clock_synced, "time_flag": flag}


def _count_device_time(result: WriteResult, row: dict[str, Any]) -> None:
    flags = result.device_time
    if not row["clock_synced"]:
        flags["unsynced"] = flags.get("unsynced", 0) + 1
    if row["time_flag"] is not None:
        flags[row["time_flag"]] = flags.get(row["time_flag"], 0) + 1


def _event_row(org_id: int, event: Event, received_at: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if event.window is not None:
        data["window"] = event.window
    if event.features:
        data["features"] = dict(event.features)
    if event.thumbnail_jpeg:
        data["thumbnail_jpeg"] = event.thumbnail_jpeg
    if event.explanation is not None:
        data["explanation"] = event.explanation.model_dump(mode="json", exclude_none=True)
    if event.commissioning is not None:
        data["commissioning"] = event.commissioning.model_dump(mode="json", exclude_none=True)
    return {
        "org_id": org_id,
        "device_id": event.device_id,
        "seq": event.seq,
        "ts": event.ts,
        "received_at": received_at,
        "received_day": received_day_of(received_at),
        **_device_time(event, received_at),
        "kind": event.kind,
        "active": event.active,
        "severity": event.severity,
        "score": event.score,
        "threshold": event.threshold,
        "model_id": event.model_id,
        "model_version": event.model_version,
        "reason": event.reason,
        "message": event.message,
        "person_count": event.person_count,
        "data": data,
        "alarm_id": None,
    }


def _telemetry_row(org_id: int, message: Telemetry, received_at: datetime) -> dict[str, Any]:
    data = message.model_dump(
        mode="json",
        include={
            "threshold",
            "rejected",
            "outbox_dropped",
            "outbox_errors",
            "arena_bytes",
            "firmware_version",
            "model_id",
            "model_version",
            "commissioning",
            "fault_visibility",
        },
        exclude_none=True,
    )
    return {
        "org_id": org_id,
        "device_id": message.device_id,
        "seq": message.seq,
        "ts": message.ts,
        "received_at": received_at,
        "received_day": received_day_of(received_at),
        **_device_time(message, received_at),
        "mode": message.mode,
        "uptime_s": message.uptime_s,
        "interval_s": message.interval_s,
        "windows": message.windows,
        "anomaly_rate": message.anomaly_rate,
        "score_p50": message.score_p50,
        "score_p95": message.score_p95,
        "score_max": message.score_max,
        "inference_us": message.inference_us,
        "detections_per_hour": message.detections_per_hour,
        "drift": message.drift,
        "outbox_depth": message.outbox_depth,
        "data": data,
    }


def _event_json(event_id: int, row: dict[str, Any]) -> dict[str, Any]:
    keys = ("device_id", "seq", "kind", "active", "severity", "score", "threshold", "reason", "message")
    out: dict[str, Any] = {"id": event_id, **{k: row[k] for k in keys}}
    out.update(
        ts=row["ts"].isoformat(),
        received_at=row["received_at"].isoformat(),
        clock_synced=row["clock_synced"],
        time_flag=row["time_flag"],
        model_version=row["model_version"],
        person_count=row["person_count"],
        alarm_id=row["alarm_id"],
    )
    for key in ("explanation", "commissioning"):  # small, and what a live log shows beside the score
        if key in row["data"]:
            out[key] = row["data"][key]
    return out


def _alarm_json(change: AlarmChange) -> dict[str, Any]:
    alarm = change.alarm
    return {
        "id": alarm.id,
        "device_id": alarm.device_id,
        "kind": alarm.kind,
        "severity": alarm.severity,
        "event_count": alarm.event_count,
        "opened_at": alarm.opened_at.isoformat(),
        "last_event_at": alarm.last_event_at.isoformat(),
    }
