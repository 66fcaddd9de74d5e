"""The rollout engine: sends update commands stage by stage, judges the health gates, halts and
rolls back. All its state is in the database, so a new engine (a restarted server) carries on
where the last one stopped.

`RolloutEngine.step(session, now)` does one pass over every rollout that needs work and returns
the commands to publish and the hub notifications; `run_once(now)` wraps it in a transaction and
publishes after commit (a command that cannot be published puts its device back to `pending`);
the app calls `run_once` every `rollout_interval_s` on a worker thread (`server.app`, with the
compact error log of `db.faults`).
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import ModelManifest, OtaCommand, utc_now
from edgefleet.contracts.messages import OtaAction
from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device, ModelRow, Rollout, RolloutDevice
from edgefleet.server.errors import ServerError
from edgefleet.server.services import audit, registry, rollout_health
from edgefleet.server.services.rollout_health import HealthLimits
from edgefleet.server.services.rollouts import ACTIVE, DONE, PROGRESS, ROLLBACK, Notification, event

log = logging.getLogger(__name__)
ManifestSource = Callable[[Session, int, int], ModelManifest]
"""(session, org_id, model_pk) -> the manifest devices get in the update command."""
Publisher = Callable[[OtaCommand], None]


@dataclass
class Outgoing:
    command: OtaCommand
    rollout_id: int
    revert_to: str
    """The device's rollout state to restore when the command cannot be published."""


@dataclass
class StepResult:
    commands: list[Outgoing] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


def registry_manifests(base_url: str) -> ManifestSource:
    def manifest(session: Session, org_id: int, model_pk: int) -> ModelManifest:
        return registry.manifest_for(session, org_id, model_pk, base_url)

    return manifest


class RolloutEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        publish: Callable[[], Publisher | None],
        manifests: ManifestSource,
        limits: HealthLimits | None = None,
        notify: Callable[[int, str, dict[str, object]], None] | None = None,
        *,
        fence: Callable[[Session], None] | None = None,
    ) -> None:
        """`publish` is asked for the current publisher on every pass (None: no MQTT connection,
        so nothing is sent and devices stay pending). `fence` raises in a pass's transaction when
        this process no longer leads the workers (`cluster/leader.py`): that pass commits and sends
        nothing, so no stage is sent twice by two engines."""
        self._sessions = sessions
        self._fence = fence
        self._publish = publish
        self.manifests = manifests
        self.limits = limits or HealthLimits()
        self._notify = notify

    # --- one pass ------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> StepResult:
        now = now or utc_now()
        with transaction(self._sessions) as session:
            if self._fence is not None:
                self._fence(session)
            result = self.step(session, now)
        self._deliver(result)
        if self._notify is not None:
            for org_id, type_, data in result.notifications:
                self._notify(org_id, type_, data)
        return result

    def step(self, session: Session, now: datetime) -> StepResult:
        result = StepResult()
        can_send = self._publish() is not None
        busy = exists().where(
            RolloutDevice.rollout_id == Rollout.id,
            or_(
                RolloutDevice.state.in_(PROGRESS),
                (Rollout.rollback & RolloutDevice.updated & RolloutDevice.state.not_in(ROLLBACK)),
            ),
        )
        query = select(Rollout).where(
            or_(Rollout.state.in_(ACTIVE), Rollout.state.in_(("halted", "aborted")) & busy)
        )
        for rollout in session.scalars(query.order_by(Rollout.id)).all():
            _Pass(self, session, rollout, now=now, result=result, can_send=can_send).run()
        return result

    def _deliver(self, result: StepResult) -> None:
        publish = self._publish()
        failed: list[Outgoing] = []
        for out in result.commands:
            try:
                if publish is None:
                    raise ServerError("no MQTT connection")
                publish(out.command)
            except Exception as err:  # broker gone: put the device back so the next pass retries
                log.warning(
                    "rollout %s: cannot send %s to %s: %s",
                    out.rollout_id,
                    out.command.action,
                    out.command.device_id,
                    err,
                )
                failed.append(out)
        if failed:
            with transaction(self._sessions) as session:
                if self._fence is not None:
                    self._fence(session)
                for out in failed:
                    row = session.get(RolloutDevice, (out.rollout_id, out.command.device_id))
                    if row is not None and row.command_id == out.command.command_id:
                        row.state = out.revert_to
                        row.sent_at = None


class _Pass:
    """The work on one rollout in one step."""

    def __init__(
        self,
        engine: RolloutEngine,
        session: Session,
        rollout: Rollout,
        *,
        now: datetime,
        result: StepResult,
        can_send: bool,
    ) -> None:
        self.engine = engine
        self.session = session
        self.rollout = rollout
        self.now = now
        self.result = result
        self.can_send = can_send
        self.rows = list(
            session.scalars(
                select(RolloutDevice)
                .where(RolloutDevice.rollout_id == rollout.id)
                .order_by(RolloutDevice.position)
            )
        )
        self._model: ModelRow | None = None
        self._manifest: ModelManifest | None = None

    @property
    def model(self) -> ModelRow:
        if self._model is None:
            model = self.session.get(ModelRow, self.rollout.model_pk)
            assert model is not None  # the foreign key cascades
            self._model = model
        return self._model

    def run(self) -> None:
        rollout = self.rollout
        if rollout.state in ACTIVE:
            for row in self.rows:
                self._check(row)
            failures = [r for r in self.rows if r.failed]
            if len(failures) > rollout.max_failures:
                self._halt(failures)
        if rollout.state == "running" and self.can_send:
            self._advance()
        if rollout.state in ("halted", "aborted") and self.can_send:
            self._wind_down()

    # --- device checks -------------------------------------------------------------------------
    def _device_changed(self, row: RolloutDevice) -> None:
        self.result.notifications.append(
            event(
                self.rollout,
                "device",
                device_id=row.device_id,
                device_state=row.state,
                device_reason=row.reason,
            )
        )

    def _fail(self, row: RolloutDevice, reason: str) -> None:
        row.state, row.failed = "failed", True
        row.reason = reason
        log.info("rollout %s: device %s failed: %s", self.rollout.id, row.device_id, reason)
        self._device_changed(row)

    def _check(self, row: RolloutDevice) -> None:
        rollout, now = self.rollout, self.now
        if row.state in PROGRESS and row.sent_at is not None:
            if (now - row.sent_at).total_seconds() > rollout.device_timeout_s:
                self._fail(
                    row, f"timeout: not UPDATED within {rollout.device_timeout_s:.0f} s (last: {row.state})"
                )
                if self.can_send:  # so that it does not switch later, unobserved
                    self._command(row, "cancel", "failed")
            return
        if row.state != "UPDATED":
            return
        if row.updated_healthy_since is None:  # the gate starts now, on the engine's clock
            row.updated_healthy_since = now
            last = rollout_health.last_telemetry_id(self.session, row.device_id)
            row.baseline = {**row.baseline, "gate_after_id": last}
            return
        verdict = rollout_health.evaluate(
            self.session, row.device_id, row.baseline, self.engine.limits, self.model.version
        )
        waited = (now - row.updated_healthy_since).total_seconds()
        if verdict.problem is not None:
            self._fail(row, f"unhealthy: {verdict.problem}")
        elif waited >= rollout.gate_s and (verdict.samples > 0 or rollout.gate_s == 0):
            row.state = "healthy"
            self._device_changed(row)
        elif verdict.samples == 0 and waited > max(rollout.device_timeout_s, rollout.gate_s):
            self._fail(row, f"no telemetry within {waited:.0f} s of the update")

    # --- rollout state -------------------------------------------------------------------------
    def _halt(self, failures: list[RolloutDevice]) -> None:
        rollout = self.rollout
        first = "; ".join(f"{r.device_id}: {r.reason}" for r in failures[:3])
        rollout.state = "halted"
        rollout.reason = f"{len(failures)} failed (limit {rollout.max_failures}): {first}"[:2000]
        rollout.rollback = rollout.rollback or rollout.auto_rollback
        rollout.updated_at = rollout.finished_at = self.now
        audit.record(
            self.session,
            rollout.org_id,
            None,
            "rollout.halt",
            "rollout",
            rollout.id,
            reason=rollout.reason,
            failures=len(failures),
            rollback=rollout.rollback,
        )
        log.warning("rollout %s halted: %s", rollout.id, rollout.reason)
        self.result.notifications.append(event(rollout, "halted"))

    def _advance(self) -> None:
        rollout = self.rollout
        while True:
            self._send_stage()
            current = [r for r in self.rows if r.stage <= rollout.stage]
            if any(r.state not in DONE and not r.failed for r in current):
                return
            if rollout.stage + 1 >= len(rollout.stages):
                failures = sum(r.failed for r in self.rows)
                rollout.state = "completed"
                rollout.reason = f"completed with {failures} failed" if failures else None
                rollout.updated_at = rollout.finished_at = self.now
                audit.record(
                    self.session,
                    rollout.org_id,
                    None,
                    "rollout.complete",
                    "rollout",
                    rollout.id,
                    failures=failures,
                )
                self.result.notifications.append(event(rollout, "completed"))
                return
            rollout.stage += 1
            rollout.updated_at = rollout.stage_started_at = self.now
            devices = sum(r.stage == rollout.stage for r in self.rows)
            audit.record(
                self.session,
                rollout.org_id,
                None,
                "rollout.stage",
                "rollout",
                rollout.id,
                stage=rollout.stage,
                percent=rollout.stages[rollout.stage],
                devices=devices,
            )
            self.result.notifications.append(event(rollout, "stage"))

    def _send_stage(self) -> None:
        model = self.model
        for row in self.rows:
            if row.stage > self.rollout.stage or row.state != "pending":
                continue
            device = self.session.get(Device, row.device_id)
            if device is None or device.revoked_at is not None:
                row.state, row.reason = "skipped", "revoked"
            elif device.model_id == model.model_id and device.model_version == model.version:
                row.state, row.reason = "skipped", "already on this version"
            else:
                manifest = self._get_manifest()
                if manifest is None:
                    return
                limits = self.engine.limits
                row.baseline = rollout_health.baseline(self.session, row.device_id, limits.baseline_samples)
                self._command(row, "update", "sent", manifest)
                continue
            self._device_changed(row)

    def _get_manifest(self) -> ModelManifest | None:
        if self._manifest is None:
            try:
                self._manifest = self.engine.manifests(
                    self.session, self.rollout.org_id, self.rollout.model_pk
                )
            except ServerError as err:
                self._halt_on_error(f"cannot build the manifest: {err}")
                return None
        return self._manifest

    def _halt_on_error(self, reason: str) -> None:
        rollout = self.rollout
        rollout.state = "halted"
        rollout.reason = reason[:2000]
        rollout.rollback = rollout.rollback or rollout.auto_rollback
        rollout.updated_at = rollout.finished_at = self.now
        audit.record(
            self.session, rollout.org_id, None, "rollout.halt", "rollout", rollout.id, reason=rollout.reason
        )
        self.result.notifications.append(event(rollout, "halted"))

    def _command(
        self, row: RolloutDevice, action: OtaAction, state: str, manifest: ModelManifest | None = None
    ) -> None:
        command = OtaCommand(
            device_id=row.device_id,
            command_id=secrets.token_hex(8),
            action=action,
            rollout_id=str(self.rollout.id),
            manifest=manifest,
            ts=self.now,
        )
        self.result.commands.append(Outgoing(command, self.rollout.id, row.state))
        row.state = state
        row.command_id = command.command_id
        row.sent_at = self.now
        self._device_changed(row)

    def _wind_down(self) -> None:
        """Cancel commands in flight; with `rollback`, roll back every device this rollout updated."""
        rollout = self.rollout
        rolled: list[str] = []
        for row in self.rows:
            if row.state in PROGRESS:
                self._command(row, "cancel", "cancelled")
            elif rollout.rollback and row.updated and row.state not in ROLLBACK:
                self._command(row, "rollback", "rollback_sent")
                rolled.append(row.device_id)
        if rolled:
            audit.record(
                self.session,
                rollout.org_id,
                None,
                "rollout.rollback",
                "rollout",
                rollout.id,
                devices=rolled[:100],
            )


def engine_for(
    context: ServerContext, base_url: str, fence: Callable[[Session], None] | None = None
) -> RolloutEngine:
    settings = context.settings
    limits = HealthLimits(
        anomaly_margin=settings.rollout_anomaly_margin,
        reject_margin=settings.rollout_reject_margin,
        baseline_samples=settings.rollout_baseline_samples,
    )
    return RolloutEngine(
        context.sessions,
        lambda: context.publish_ota,
        registry_manifests(base_url),
        limits,
        context.hub.publish,
        fence=fence,
    )
