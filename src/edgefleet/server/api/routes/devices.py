"""Devices: list, add (-> claim token), claim (-> MQTT credentials), revoke, delete, commands."""

import math
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import ValidationError

from edgefleet.contracts import Channel, topic_for
from edgefleet.server import signing
from edgefleet.server.api.deps import AdminUser, ContextDep, CurrentUser, QueryTime, SessionDep
from edgefleet.server.schemas import (
    CommandCreate,
    CommandSent,
    DeviceClaim,
    DeviceCreate,
    DeviceCreated,
    DeviceCredentials,
    DevicePublic,
    DeviceUpdate,
    TelemetryPublic,
)
from edgefleet.server.services import devices, queries

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
def list_devices(principal: CurrentUser, session: SessionDep) -> list[DevicePublic]:
    """All devices of your organization, with online state and last seen."""
    return [DevicePublic.model_validate(d) for d in devices.list_devices(session, principal.org_id)]


@router.post("", status_code=status.HTTP_201_CREATED)
def add_device(
    body: DeviceCreate, principal: AdminUser, session: SessionDep, context: ContextDep
) -> DeviceCreated:
    """Register a device; returns its one-time claim token (admin)."""
    if context.settings.reserved_device_id(body.id):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"device id {body.id!r} is reserved (the server's own MQTT users start with edgefleet-ingest)",
        )
    device, token = devices.add_device(session, principal, body, context.settings.claim_token_ttl_s)
    public = DevicePublic.model_validate(device).model_dump()
    return DeviceCreated.model_validate(
        {**public, "claim_token": token, "claim_expires_at": device.claim_expires_at}
    )


@router.post("/claim")
def claim_device(body: DeviceClaim, session: SessionDep, context: ContextDep) -> DeviceCredentials:
    """Called by the device: exchange the claim token, once, for its MQTT credentials."""
    device, secret = devices.claim_device(session, body.device_id, body.claim_token)
    key_id, public_key = signing.public_key(session, device.org_id, secret=context.settings.secret_key)
    session.commit()
    context.devices_changed()
    return DeviceCredentials(
        device_id=device.id,
        username=device.id,
        password=secret,
        broker_url=context.broker_url_for_devices,
        ota_key_id=key_id,
        ota_public_key=public_key,
    )


@router.get("/{device_id}")
def read_device(device_id: str, principal: CurrentUser, session: SessionDep) -> DevicePublic:
    return DevicePublic.model_validate(devices.get_device(session, principal.org_id, device_id))


@router.patch("/{device_id}")
def update_device(
    device_id: str, body: DeviceUpdate, principal: AdminUser, session: SessionDep
) -> DevicePublic:
    """Rename the device or replace its tags, which rollouts can target (admin)."""
    return DevicePublic.model_validate(devices.update_device(session, principal, device_id, body))


@router.post("/{device_id}/revoke")
def revoke_device(
    device_id: str, principal: AdminUser, session: SessionDep, context: ContextDep
) -> DevicePublic:
    """Withdraw the device's credentials; the broker refuses it from now on (admin)."""
    device = devices.revoke_device(session, principal, device_id)
    session.commit()
    context.devices_changed()
    return DevicePublic.model_validate(device)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(
    device_id: str,
    principal: AdminUser,
    session: SessionDep,
    context: ContextDep,
    keep_data: Annotated[bool, Query(description="keep its events, telemetry and alarms")] = True,
) -> None:
    devices.delete_device(session, principal, device_id, keep_data)
    session.commit()
    context.devices_changed()


@router.post("/{device_id}/commands", status_code=status.HTTP_202_ACCEPTED)
def send_command(
    device_id: str, body: CommandCreate, principal: AdminUser, session: SessionDep, context: ContextDep
) -> CommandSent:
    """Publish a command on the device's `cmd` topic (QoS 1) (admin)."""
    not_finite = sorted(k for k, v in body.args.items() if isinstance(v, float) and not math.isfinite(v))
    if not_finite:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"command args must be finite numbers (NaN and infinities cannot be sent): {not_finite}",
        )
    try:
        command = devices.build_command(session, principal, device_id, body)
    except ValidationError as err:  # what the API's schema lets through but the wire contract does not
        problems = "; ".join(sorted({e["msg"] for e in err.errors(include_url=False, include_input=False)}))
        detail = f"the command does not fit the device contract (arg names: A-Z a-z 0-9 _.:+-): {problems}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from err
    if context.publish_command is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no MQTT connection on this server")
    context.publish_command(command)
    return CommandSent(command_id=command.command_id, topic=topic_for(device_id, Channel.CMD))


@router.get("/{device_id}/telemetry")
def list_device_telemetry(
    device_id: str,
    *,
    principal: CurrentUser,
    session: SessionDep,
    since: QueryTime = None,
    until: QueryTime = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[TelemetryPublic]:
    """Raw telemetry of one device, newest first."""
    devices.get_device(session, principal.org_id, device_id)
    rows = queries.list_telemetry(session, principal.org_id, device_id, since=since, until=until, limit=limit)
    return [TelemetryPublic.model_validate(r) for r in rows]
