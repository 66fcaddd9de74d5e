"""The demo organization, its user and its devices, through the server's services; idempotent.

A second run finds the user and the devices and keeps them. A device whose secret the demo no
longer holds (state file deleted, device revoked in the dashboard) is deleted with its data kept
and added and claimed again, the way a real device would be re-provisioned.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.cli.demo.options import DemoError
from edgefleet.server import ServerError, security
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device, User
from edgefleet.server.schemas import DeviceCreate
from edgefleet.server.services import accounts, devices
from edgefleet.server.services.principal import Principal

log = logging.getLogger(__name__)
DEMO_ORGANIZATION = "Demo plant"


@dataclass(frozen=True)
class DeviceSpec:
    id: str
    name: str
    kind: Literal["vibration", "camera"]


@dataclass
class Seeded:
    org_id: int
    user_created: bool
    secrets: dict[str, str] = field(default_factory=dict)
    """Device id -> MQTT password, for every device asked for."""
    added: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def _ensure_user(session: Session, email: str, password: str) -> tuple[User, bool]:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        return accounts.sign_up(session, email, password, DEMO_ORGANIZATION), True
    if not security.verify_password(user.password_hash, password):
        # The database outlived the state file that held the password: set the one we print.
        log.warning("the demo user's password was not in the demo state; it has been reset")
        user.password_hash = security.hash_password(password)
    user.is_active = True
    return user, False


def _ensure_device(
    session: Session, principal: Principal, spec: DeviceSpec, known: str | None, ttl_s: int
) -> tuple[str, bool]:
    """The device's MQTT password, and whether it was there already."""
    device = session.get(Device, spec.id)
    if device is not None and device.org_id != principal.org_id:
        raise DemoError(f"device id {spec.id} belongs to another organization in this database; use --home")
    if (
        device is not None
        and device.revoked_at is None
        and known is not None
        and security.verify_device_secret(device.secret_hash, known)
    ):
        return known, True
    if device is not None:
        log.info("%s: re-provisioning (the demo no longer holds a valid secret for it)", spec.id)
        devices.delete_device(session, principal, spec.id, keep_data=True)
        session.flush()
    create = DeviceCreate(id=spec.id, name=spec.name, kind=spec.kind)
    _, token = devices.add_device(session, principal, create, ttl_s)
    _, secret = devices.claim_device(session, spec.id, token)
    return secret, False


def seed_demo(
    sessions: sessionmaker[Session],
    email: str,
    password: str,
    specs: list[DeviceSpec],
    known_secrets: Mapping[str, str],
    claim_ttl_s: int,
) -> Seeded:
    """Make sure the demo user (owner of the demo organization) and `specs` exist; one transaction."""
    try:
        with transaction(sessions) as session:
            user, created = _ensure_user(session, email, password)
            principal = Principal(user, via="session")
            seeded = Seeded(org_id=user.org_id, user_created=created)
            for spec in specs:
                secret, reused = _ensure_device(
                    session, principal, spec, known_secrets.get(spec.id), claim_ttl_s
                )
                seeded.secrets[spec.id] = secret
                (seeded.reused if reused else seeded.added).append(spec.id)
    except ServerError as err:
        raise DemoError(f"cannot set up the demo organization: {err}") from err
    return seeded
