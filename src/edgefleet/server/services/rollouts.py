"""Rollouts: create (choose and order the devices), list, read, pause, resume, abort, and apply the
OTA states devices report. The engine (`server/rollout_engine.py`) sends the commands and judges
the health gates; everything here is one transaction of the caller's session."""

import hashlib
import logging
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefleet.contracts import OtaState, utc_now
from edgefleet.server.db.models import Device, ModelRow, Rollout, RolloutDevice
from edgefleet.server.errors import ConflictError, NotFoundError
from edgefleet.server.schemas import (
    RolloutCreate,
    RolloutDetail,
    RolloutDevicePublic,
    RolloutPublic,
    RolloutStagePublic,
    RolloutTarget,
)
from edgefleet.server.services import audit, registry
from edgefleet.server.services.principal import Principal

log = logging.getLogger(__name__)
Notification = tuple[int, str, dict[str, Any]]
"""(org_id, hub message type, data), published after commit."""

ACTIVE: Final = ("running", "paused")
PROGRESS: Final = ("sent", "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING")
"""A command is out and the device has not yet reported UPDATED (or failed)."""
DONE: Final = ("healthy", "skipped")
ROLLBACK: Final = ("rollback_sent", "rolled_back")


def stage_sizes(count: int, stages: list[int]) -> list[int]:
    """Devices covered by each cumulative stage: ceil(count x percent / 100)."""
    return [-(-count * percent // 100) for percent in stages]


def _order_key(rollout_id: int, device_id: str) -> str:
    return hashlib.sha256(f"{rollout_id}:{device_id}".encode()).hexdigest()


def _select_devices(session: Session, org_id: int, target: RolloutTarget, kind: str) -> list[Device]:
    query = select(Device).where(
        Device.org_id == org_id, Device.revoked_at.is_(None), Device.claimed_at.is_not(None)
    )
    devices = list(session.scalars(query))
    if target.device_ids is not None:
        by_id = {d.id: d for d in devices}
        for device_id in target.device_ids:
            if device_id not in by_id:
                raise NotFoundError(f"no claimed device {device_id!r}")
            if by_id[device_id].kind != kind:
                raise ConflictError(
                    f"device {device_id!r} is a {by_id[device_id].kind} device; the model is for {kind}"
                )
        return [by_id[i] for i in dict.fromkeys(target.device_ids)]
    if target.device_kind is not None and target.device_kind != kind:
        raise ConflictError(f"the model is for {kind} devices, not {target.device_kind}")
    chosen = [d for d in devices if d.kind == kind]
    if target.tag is not None:
        chosen = [d for d in chosen if target.tag in (d.tags or [])]
    return chosen


def create_rollout(session: Session, principal: Principal, create: RolloutCreate) -> Rollout:
    principal.require("admin")
    model = registry.get_model(session, principal.org_id, create.model_pk)
    devices = _select_devices(session, principal.org_id, create.target, model.device_kind)
    if not devices:
        raise ConflictError("the target matches no claimed devices of the model's kind")
    busy = session.execute(
        select(RolloutDevice.device_id, Rollout.id, Rollout.state)
        .join(Rollout, Rollout.id == RolloutDevice.rollout_id)
        .where(Rollout.state.in_(ACTIVE), RolloutDevice.device_id.in_([d.id for d in devices]))
        .limit(1)
    ).first()
    if busy is not None:
        raise ConflictError(f"device {busy[0]!r} is in rollout {busy[1]}, which is {busy[2]}")
    now = utc_now()
    rollout = Rollout(
        org_id=principal.org_id,
        model_pk=model.id,
        target=create.target.model_dump(exclude_none=True),
        stages=list(create.stages),
        gate_s=create.gate_s,
        device_timeout_s=create.device_timeout_s,
        max_failures=create.max_failures,
        auto_rollback=create.auto_rollback,
        state="running",
        stage=0,
        stage_started_at=now,
        rollback=False,
        created_by=principal.user.id,
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    session.flush()
    ordered = sorted(devices, key=lambda d: _order_key(rollout.id, d.id))
    sizes = stage_sizes(len(ordered), rollout.stages)
    for position, device in enumerate(ordered):
        stage = next(i for i, size in enumerate(sizes) if position < size)
        session.add(
            RolloutDevice(
                rollout_id=rollout.id,
                device_id=device.id,
                position=position,
                stage=stage,
                state="pending",
                updated=False,
                failed=False,
                baseline={},
            )
        )
    session.flush()
    audit.record(
        session,
        principal.org_id,
        principal.user.id,
        "rollout.create",
        "rollout",
        rollout.id,
        model_pk=model.id,
        model=f"{model.model_id}@{model.version}",
        target=rollout.target,
        stages=rollout.stages,
        devices=len(ordered),
    )
    return rollout


def list_rollouts(session: Session, org_id: int, limit: int = 100) -> list[Rollout]:
    query = select(Rollout).where(Rollout.org_id == org_id).order_by(Rollout.id.desc()).limit(limit)
    return list(session.scalars(query))


def get_rollout(session: Session, org_id: int, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None or rollout.org_id != org_id:
        raise NotFoundError(f"no rollout {rollout_id}")
    return rollout


def _change_state(
    session: Session,
    principal: Principal,
    rollout_id: int,
    allowed: tuple[str, ...],
    state: str,
    **detail: Any,
) -> Rollout:
    principal.require("admin")
    rollout = get_rollout(session, principal.org_id, rollout_id)
    if rollout.state not in allowed:
        raise ConflictError(f"rollout {rollout_id} is {rollout.state}; it cannot be {state}")
    previous = rollout.state
    rollout.state = state
    rollout.updated_at = utc_now()
    if state == "aborted":
        rollout.finished_at = rollout.finished_at or rollout.updated_at
        rollout.reason = f"aborted by {principal.user.email}"
    action = {"paused": "pause", "running": "resume", "aborted": "abort"}[state]
    audit.record(
        session,
        principal.org_id,
        principal.user.id,
        f"rollout.{action}",
        "rollout",
        rollout.id,
        previous=previous,
        **detail,
    )
    return rollout


def pause(session: Session, principal: Principal, rollout_id: int) -> Rollout:
    """No new commands; states of devices already commanded are still tracked."""
    return _change_state(session, principal, rollout_id, ("running",), "paused")


def resume(session: Session, principal: Principal, rollout_id: int) -> Rollout:
    return _change_state(session, principal, rollout_id, ("paused",), "running")


def abort(session: Session, principal: Principal, rollout_id: int, rollback: bool) -> Rollout:
    """Stop for good; the engine cancels commands in flight and, with `rollback`, rolls back the
    devices this rollout updated (an aborted halted rollout can still ask for the rollback)."""
    rollout = _change_state(
        session, principal, rollout_id, ("running", "paused", "halted"), "aborted", rollback=rollback
    )
    rollout.rollback = rollout.rollback or rollback
    return rollout


def event(rollout: Rollout, change: str, **extra: Any) -> Notification:
    data = {
        "change": change,
        "id": rollout.id,
        "state": rollout.state,
        "stage": rollout.stage,
        "reason": rollout.reason,
        **extra,
    }
    return rollout.org_id, "rollout", data


# --- OTA states from ingest ----------------------------------------------------------------------
def apply_state(row: RolloutDevice, state: str, reason: str | None) -> bool:
    """Move one rollout device on by a reported OTA state; True when something changed.

    Out-of-order and repeated reports are harmless: progress only moves forward, and a state that
    does not fit (UPDATED after a rollback was asked for) is ignored."""
    before = (row.state, row.updated, row.failed, row.reason)
    current = row.state
    if state in PROGRESS:
        if current in PROGRESS and PROGRESS.index(state) > PROGRESS.index(current):
            row.state = state
    elif state == "UPDATED":
        if current in PROGRESS or current == "cancelled":
            row.state = "UPDATED"
            row.updated = True
            row.updated_healthy_since = None
        elif current == "failed":
            row.updated = True  # e.g. it timed out, then made it: it is on the model now
    elif state == "FAILED":
        if current in PROGRESS:
            row.state, row.failed = "failed", True
            row.reason = f"FAILED: {reason}"
        elif current in ("cancelled", "rollback_sent"):
            row.reason = f"FAILED: {reason}"
    elif state == "ROLLED_BACK":
        if current == "rollback_sent":
            row.state = "rolled_back"
            row.reason = reason
        elif current in (*PROGRESS, "UPDATED", "healthy"):
            row.state, row.failed = "failed", True
            row.reason = f"ROLLED_BACK: {reason}"
        row.updated = False
    return (row.state, row.updated, row.failed, row.reason) != before


def on_ota_state(session: Session, org_id: int, message: OtaState) -> list[Notification]:
    """Called by the ingest store for every OTA state it accepts (inside its transaction)."""
    if message.rollout_id is None or not message.rollout_id.isdigit():
        return []
    rollout = session.get(Rollout, int(message.rollout_id))
    if rollout is None or rollout.org_id != org_id:
        return []
    row = session.get(RolloutDevice, (rollout.id, message.device_id))
    if row is None or not apply_state(row, message.state, message.reason):
        return []
    row.updated_at = message.ts
    return [
        event(rollout, "device", device_id=row.device_id, device_state=row.state, device_reason=row.reason)
    ]


# --- public views --------------------------------------------------------------------------------
def _counts(session: Session, rollout_ids: list[int]) -> dict[int, tuple[dict[str, int], int]]:
    """Rollout id -> (devices per state, failures)."""
    rows = session.execute(
        select(RolloutDevice.rollout_id, RolloutDevice.state, RolloutDevice.failed, func.count())
        .where(RolloutDevice.rollout_id.in_(rollout_ids))
        .group_by(RolloutDevice.rollout_id, RolloutDevice.state, RolloutDevice.failed)
    ).all()
    states: dict[int, dict[str, int]] = {i: {} for i in rollout_ids}
    failures = dict.fromkeys(rollout_ids, 0)
    for rollout_id, state, failed, count in rows:
        states[rollout_id][state] = states[rollout_id].get(state, 0) + int(count)
        failures[rollout_id] += int(count) if failed else 0
    return {i: (states[i], failures[i]) for i in rollout_ids}


def _public_fields(
    rollout: Rollout, model: ModelRow | None, counts: tuple[dict[str, int], int]
) -> dict[str, Any]:
    fields = {name: getattr(rollout, name) for name in RolloutPublic.model_fields if hasattr(rollout, name)}
    fields.update(
        model_id=model.model_id if model else "?",
        model_version=model.version if model else "?",
        devices=sum(counts[0].values()),
        failures=counts[1],
        counts=counts[0],
    )
    return fields


def publics(session: Session, rollouts: list[Rollout]) -> list[RolloutPublic]:
    counts = _counts(session, [r.id for r in rollouts])
    models = {
        m.id: m
        for m in session.scalars(select(ModelRow).where(ModelRow.id.in_({r.model_pk for r in rollouts})))
    }
    return [
        RolloutPublic.model_validate(_public_fields(r, models.get(r.model_pk), counts[r.id]))
        for r in rollouts
    ]


def _stage_state(rollout: Rollout, index: int) -> Literal["waiting", "active", "passed"]:
    if index < rollout.stage or (rollout.state == "completed" and index == rollout.stage):
        return "passed"
    return "active" if index == rollout.stage else "waiting"


def detail(session: Session, rollout: Rollout) -> RolloutDetail:
    rows = list(
        session.scalars(
            select(RolloutDevice)
            .where(RolloutDevice.rollout_id == rollout.id)
            .order_by(RolloutDevice.position)
        )
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = []
    for index, percent in enumerate(rollout.stages):
        members = [r for r in rows if r.stage == index]
        done = sum(r.state in DONE for r in members)
        failed = sum(r.failed for r in members)
        pending = sum(r.state == "pending" for r in members)
        summary.append(
            RolloutStagePublic(
                index=index,
                percent=percent,
                devices=len(members),
                done=done,
                failed=failed,
                pending=pending,
                in_progress=sum(r.state in (*PROGRESS, "UPDATED") for r in members),
                state=_stage_state(rollout, index),
            )
        )
    failures = sum(r.failed for r in rows)
    fields = _public_fields(rollout, session.get(ModelRow, rollout.model_pk), (counts, failures))
    return RolloutDetail.model_validate(
        {
            **fields,
            "stage_summary": summary,
            "device_states": [RolloutDevicePublic.model_validate(r) for r in rows],
        }
    )
