"""Rollouts: staged model updates with health gates; pause, resume, abort."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from edgefleet.server.api.deps import AdminUser, AnnouncerDep, CurrentUser, IdPath, SessionDep
from edgefleet.server.db.models import Rollout
from edgefleet.server.schemas import RolloutAbort, RolloutCreate, RolloutDetail, RolloutPublic
from edgefleet.server.services import rollouts

router = APIRouter(prefix="/rollouts", tags=["rollouts"])


def _announce(announce: AnnouncerDep, rollout: Rollout, change: str) -> None:
    announce.publish(*rollouts.event(rollout, change))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_rollout(
    body: RolloutCreate, principal: AdminUser, session: SessionDep, announce: AnnouncerDep
) -> RolloutDetail:
    """Start a staged update of a registry model to a device kind, a tag or a device list (admin).

    The devices are put in a fixed order (by a hash of rollout and device id); stage i updates the
    first ceil(n x stages[i] / 100) of them once every device of the previous stage is healthy."""
    rollout = rollouts.create_rollout(session, principal, body)
    _announce(announce, rollout, "created")
    return rollouts.detail(session, rollout)


@router.get("")
def list_rollouts(
    principal: CurrentUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[RolloutPublic]:
    """Your organization's rollouts, newest first, with device counts per state."""
    return rollouts.publics(session, rollouts.list_rollouts(session, principal.org_id, limit))


@router.get("/{rollout_id}")
def read_rollout(rollout_id: IdPath, principal: CurrentUser, session: SessionDep) -> RolloutDetail:
    """One rollout with its stages and every device's state."""
    return rollouts.detail(session, rollouts.get_rollout(session, principal.org_id, rollout_id))


@router.post("/{rollout_id}/pause")
def pause_rollout(
    rollout_id: IdPath, principal: AdminUser, session: SessionDep, announce: AnnouncerDep
) -> RolloutDetail:
    """No new commands until resumed; devices already commanded are still tracked (admin)."""
    rollout = rollouts.pause(session, principal, rollout_id)
    _announce(announce, rollout, "paused")
    return rollouts.detail(session, rollout)


@router.post("/{rollout_id}/resume")
def resume_rollout(
    rollout_id: IdPath, principal: AdminUser, session: SessionDep, announce: AnnouncerDep
) -> RolloutDetail:
    rollout = rollouts.resume(session, principal, rollout_id)
    _announce(announce, rollout, "resumed")
    return rollouts.detail(session, rollout)


@router.post("/{rollout_id}/abort")
def abort_rollout(
    rollout_id: IdPath,
    principal: AdminUser,
    session: SessionDep,
    announce: AnnouncerDep,
    body: RolloutAbort | None = None,
) -> RolloutDetail:
    """Stop for good: commands in flight are cancelled; with `rollback`, updated devices roll back (admin)."""
    rollout = rollouts.abort(session, principal, rollout_id, body.rollback if body else False)
    _announce(announce, rollout, "aborted")
    return rollouts.detail(session, rollout)
