"""A rollout test bench: a database with an organization, registry models and claimed devices, the
real ingest store to feed OTA states and telemetry, and a rollout engine on a fake clock."""

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Channel, OtaCommand, OtaState, Telemetry, encode, topic_for
from edgefleet.contracts.messages import OtaStateName
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import AuditEntry, Device, Organization, Rollout, RolloutDevice, User
from edgefleet.server.errors import BrokerError
from edgefleet.server.ingest import IngestStore, Received, WriteResult
from edgefleet.server.rollout_engine import RolloutEngine, StepResult, registry_manifests
from edgefleet.server.schemas import RolloutCreate, RolloutTarget
from edgefleet.server.services import accounts, registry, rollouts
from edgefleet.server.services.principal import Principal
from edgefleet.server.services.rollout_health import HealthLimits
from tests.server import registry_kit
from tests.server.conftest import PASSWORD

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
BASE_URL = "http://server.test:8000"
OLD, NEW = "1.0.0", "2.0.0"
PROGRESS: tuple[OtaStateName, ...] = ("DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED")


class Sink:
    """The engine's publisher: records commands; `enabled=False` is "no MQTT", `fail` a broken one."""

    def __init__(self) -> None:
        self.commands: list[OtaCommand] = []
        self.enabled = True
        self.fail = False

    def __call__(self, command: OtaCommand) -> None:
        if self.fail:
            raise BrokerError("the broker is gone")
        self.commands.append(command)

    def take(self) -> list[OtaCommand]:
        out, self.commands = self.commands, []
        return out


def by_action(commands: Iterable[OtaCommand]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for command in commands:
        out.setdefault(command.action, set()).add(command.device_id)
    return out


@dataclass
class Bench:
    url: str
    sessions: sessionmaker[Session]
    org_id: int
    user_id: int
    models: dict[str, int]
    devices: list[str]
    sink: Sink = field(default_factory=Sink)
    notifications: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    engine: RolloutEngine | None = None
    store: IngestStore | None = None
    _seq: Any = field(default_factory=lambda: itertools.count(1))
    _uptime: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = IngestStore(self.sessions)
        self.engine = self.new_engine()

    def new_engine(self, sessions: sessionmaker[Session] | None = None) -> RolloutEngine:
        return RolloutEngine(
            sessions or self.sessions,
            lambda: self.sink if self.sink.enabled else None,
            registry_manifests(BASE_URL),
            HealthLimits(anomaly_margin=0.1, reject_margin=0.05, baseline_samples=20),
            lambda org, type_, data: self.notifications.append((org, type_, dict(data))),
        )

    # --- actions ---------------------------------------------------------------------------------
    def principal(self, session: Session) -> Principal:
        user = session.get(User, self.user_id)
        assert user is not None
        return Principal(user, via="session")

    def create(self, **overrides: Any) -> int:
        values: dict[str, Any] = {
            "model_pk": self.models[NEW],
            "target": RolloutTarget(device_kind="vibration"),
            "gate_s": 60.0,
            "device_timeout_s": 300.0,
            "max_failures": 0,
            "auto_rollback": True,
        }
        values.update(overrides)
        with transaction(self.sessions) as session:
            return rollouts.create_rollout(session, self.principal(session), RolloutCreate(**values)).id

    def step(self, seconds: float, engine: RolloutEngine | None = None) -> StepResult:
        chosen = engine or self.engine
        assert chosen is not None
        return chosen.run_once(T0 + timedelta(seconds=seconds))

    def ingest(self, *messages: OtaState | Telemetry) -> WriteResult:
        assert self.store is not None
        batch = []
        for message in messages:
            channel = Channel.OTA_STATE if isinstance(message, OtaState) else Channel.TELEMETRY
            batch.append(Received(topic_for(message.device_id, channel), encode(message)))
        return self.store.write(batch)

    def report(
        self, device_id: str, state: OtaStateName, rollout_id: int | str | None, reason: str | None = None
    ) -> WriteResult:
        version = NEW if state == "UPDATED" else None
        message = OtaState(
            device_id=device_id,
            seq=next(self._seq),
            ts=T0,
            state=state,
            rollout_id=None if rollout_id is None else str(rollout_id),
            model_id="press-ae" if version else None,
            model_version=version,
            reason=reason,
        )
        return self.ingest(message)

    def update(self, devices: Iterable[str], rollout_id: int) -> None:
        for device_id in devices:
            for state in PROGRESS:
                self.report(device_id, state, rollout_id)

    def telemetry(
        self,
        device_id: str,
        anomaly_rate: float | None = 0.02,
        *,
        rejected: int = 0,
        restart: bool = False,
        model_version: str | None = None,
        mode: Literal["commissioning", "running"] = "running",
    ) -> None:
        message = self.telemetry_message(
            device_id, anomaly_rate, rejected=rejected, restart=restart, model_version=model_version
        )
        self.ingest(message.model_copy(update={"mode": mode}))

    def telemetry_message(
        self,
        device_id: str,
        anomaly_rate: float | None = 0.02,
        *,
        rejected: int = 0,
        restart: bool = False,
        model_version: str | None = None,
    ) -> Telemetry:
        uptime = 30.0 if restart else self._uptime.get(device_id, 1000.0) + 60.0
        self._uptime[device_id] = uptime
        return Telemetry(
            device_id=device_id,
            seq=next(self._seq),
            ts=T0,
            mode="running",
            uptime_s=uptime,
            interval_s=60.0,
            windows=100,
            anomaly_rate=anomaly_rate,
            rejected={"range": rejected} if rejected else {},
            model_id="press-ae",
            model_version=model_version,
        )

    # --- reading ---------------------------------------------------------------------------------
    def rollout(self, rollout_id: int) -> Rollout:
        with self.sessions() as session:
            row = session.get(Rollout, rollout_id)
            assert row is not None
            return row

    def rows(self, rollout_id: int) -> list[RolloutDevice]:
        with self.sessions() as session:
            query = select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
            return list(session.scalars(query.order_by(RolloutDevice.position)))

    def row(self, rollout_id: int, device_id: str) -> RolloutDevice:
        with self.sessions() as session:
            row = session.get(RolloutDevice, (rollout_id, device_id))
            assert row is not None
            return row

    def stage(self, rollout_id: int, index: int) -> list[str]:
        return [r.device_id for r in self.rows(rollout_id) if r.stage == index]

    def states(self, rollout_id: int) -> dict[str, str]:
        return {r.device_id: r.state for r in self.rows(rollout_id)}

    def audit_actions(self) -> list[str]:
        with self.sessions() as session:
            query = select(AuditEntry.action).where(AuditEntry.org_id == self.org_id).order_by(AuditEntry.id)
            return list(session.scalars(query))

    def set_model_version(self, device_id: str, version: str) -> None:
        with transaction(self.sessions) as session:
            device = session.get(Device, device_id)
            assert device is not None
            device.model_version = version


def upload(session: Session, principal: Principal, version: str, cases: list[dict[str, Any]]) -> int:
    upload = registry.ModelUpload(
        tflite=registry_kit.FAKE_TFLITE,
        card_json=json.dumps(registry_kit.card(version=version)).encode(),
        self_test_json=json.dumps(cases).encode(),
    )
    return registry.upload_model(session, principal, upload, secret=SECRET).id


def make_bench(url: str, n_devices: int = 20, org_name: str = "Plant") -> Bench:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        org = Organization(name=org_name)
        session.add(org)
        session.flush()
        user = accounts.create_user(session, org.id, f"owner@{org_name.lower()}.example", PASSWORD, "owner")
        principal = Principal(user, via="session")
        models = {v: upload(session, principal, v, registry_kit.self_test()) for v in (OLD, NEW)}
        devices = [f"{org_name.lower()}-d{i:02d}" for i in range(n_devices)]
        for device_id in devices:
            session.add(
                Device(
                    id=device_id,
                    org_id=org.id,
                    name=device_id,
                    kind="vibration",
                    online=True,
                    claimed_at=T0,
                    model_id="press-ae",
                    model_version=OLD,
                )
            )
        org_id, user_id = org.id, user.id
    bench = Bench(url, sessions, org_id, user_id, models, devices)
    baseline = [bench.telemetry_message(d, 0.02, model_version=OLD) for d in devices for _ in range(3)]
    bench.ingest(*baseline)
    return bench
