"""Devices: add (-> one-time claim token), claim (-> MQTT credentials), revoke, delete."""

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgefleet.contracts import Command, utc_now
from edgefleet.server import security
from edgefleet.server.db.models import Alarm, Device, EventRow, TelemetryHourly, TelemetryRow
from edgefleet.server.errors import AuthError, ConflictError, NotFoundError
from edgefleet.server.schemas import CommandCreate, DeviceCreate, DeviceUpdate
from edgefleet.server.services import audit
from edgefleet.server.services.principal import Principal


def list_devices(session: Session, org_id: int) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.org_id == org_id).order_by(Device.id)))


def get_device(session: Session, org_id: int, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None or device.org_id != org_id:
        raise NotFoundError(f"no device {device_id!r}")
    return device


def add_device(
    session: Session, principal: Principal, create: DeviceCreate, ttl_s: int
) -> tuple[Device, str]:
    principal.require("admin")
    if session.get(Device, create.id) is not None:
        raise ConflictError(f"device id {create.id!r} is taken")
    token, token_hash = security.new_one_time_token()
    device = Device(
        id=create.id,
        org_id=principal.org_id,
        name=create.name or create.id,
        kind=create.kind,
        claim_token_hash=token_hash,
        claim_expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
        online=False,
    )
    session.add(device)
    session.flush()
    audit.record(session, principal.org_id, principal.user.id, "device.add", "device", device.id)
    return device, token


def claim_device(session: Session, device_id: str, claim_token: str) -> tuple[Device, str]:
    """Exchange the one-time claim token for a device secret (returned once, stored hashed)."""
    device = session.get(Device, device_id, with_for_update=True)
    valid = (
        device is not None
        and device.revoked_at is None
        and device.claim_token_hash is not None
        and secrets.compare_digest(device.claim_token_hash, security.sha256_hex(claim_token))
        and device.claim_expires_at is not None
        and device.claim_expires_at > utc_now()
    )
    if not valid or device is None:
        raise AuthError("the claim token is unknown, used or expired")
    secret = security.new_device_secret()
    device.secret_hash = security.hash_device_secret(secret)
    device.claim_token_hash = None
    device.claim_expires_at = None
    device.claimed_at = utc_now()
    audit.record(session, device.org_id, None, "device.claim", "device", device.id)
    return device, secret


def update_device(session: Session, principal: Principal, device_id: str, update: DeviceUpdate) -> Device:
    """Rename the device or replace its tags (admin)."""
    principal.require("admin")
    device = get_device(session, principal.org_id, device_id)
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    if "tags" in changes:
        changes["tags"] = sorted(set(changes["tags"]))
    for name, value in changes.items():
        setattr(device, name, value)
    if changes:
        audit.record(
            session, principal.org_id, principal.user.id, "device.update", "device", device.id, **changes
        )
    return device


def revoke_device(session: Session, principal: Principal, device_id: str) -> Device:
    principal.require("admin")
    device = get_device(session, principal.org_id, device_id)
    if device.revoked_at is None:
        device.revoked_at = utc_now()
        device.secret_hash = None
        device.claim_token_hash = None
        device.online = False
        audit.record(session, principal.org_id, principal.user.id, "device.revoke", "device", device.id)
    return device


def delete_device(session: Session, principal: Principal, device_id: str, keep_data: bool) -> None:
    """Delete the device; its events, telemetry and alarms stay unless `keep_data` is False."""
    principal.require("admin")
    device = get_device(session, principal.org_id, device_id)
    if not keep_data:
        for table in (EventRow, TelemetryRow, TelemetryHourly, Alarm):
            session.execute(
                delete(table).where(table.device_id == device_id, table.org_id == principal.org_id)
            )
    audit.record(
        session,
        principal.org_id,
        principal.user.id,
        "device.delete",
        "device",
        device_id,
        keep_data=keep_data,
    )
    session.delete(device)


def build_command(session: Session, principal: Principal, device_id: str, create: CommandCreate) -> Command:
    principal.require("admin")
    device = get_device(session, principal.org_id, device_id)
    if device.revoked_at is not None:
        raise ConflictError(f"device {device_id!r} is revoked")
    command = Command(
        device_id=device.id,
        command_id=secrets.token_hex(8),
        command=create.command,
        args=create.args,
        ts=utc_now(),
    )
    audit.record(
        session,
        principal.org_id,
        principal.user.id,
        "device.command",
        "device",
        device.id,
        command=create.command,
        command_id=command.command_id,
    )
    return command
