"""Keep an external Mosquitto's password and ACL files in step with the device table.

The server writes both files (atomically) and sends SIGHUP to Mosquitto (pid from
`mosquitto_pid_file`) so it re-reads them. Device password hashes are stored in Mosquitto's own
`$7$` (PBKDF2-SHA512) form, so the server never needs the secrets themselves.

`BROKER_SETTINGS` is the part of `mosquitto.conf` the ingest needs (docs/server.md).
"""

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import COMMAND_CHANNELS, DEVICE_CHANNELS, TOPIC_PREFIX
from edgefleet.server import security
from edgefleet.server.db.models import Device
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)

BROKER_SETTINGS: Final = """\
# The ingest acknowledges (PUBACK) only after its database commit: room for whole batches in flight
# (default 20, which holds PostgreSQL ingest to about 1,500 events/s).
max_inflight_messages 1000
# Default 1000: beyond that backlog Mosquitto silently DROPS messages for the ingest client.
max_queued_messages 0
# Sessions survive a restart: the ingest's and each device's subscriptions (`ack`, `cmd`) and the
# QoS 1 messages queued for them.
persistence true
# Save them every 30 s, not only at a clean shutdown (default 1800 s): a crashed Mosquitto (kill -9,
# power loss) otherwise comes back without the sessions and queued messages of the last half hour.
# Nothing is lost either way (devices keep what the server has not acknowledged on `ack` and resend
# it); a saved session only spares the resend.
autosave_interval 30
# Devices keep persistent sessions (their `ack` and `cmd` subscriptions survive a reconnect); a
# session of a device gone for good would otherwise be kept, with its queued messages, forever.
persistent_client_expiration 14d
# Every client's id is its username: a device cannot connect under the ingest's or another device's
# client id, which would disconnect that client and take over its session. Anonymous clients are
# refused; each ingest worker connects with its own username (EDGEFLEET_INGEST_USERNAME).
use_username_as_clientid true
# Refuse a packet over 68 KiB (a device message is at most 64 KiB) before reading it, and close the
# connection; the default (256 MiB) makes the broker buffer whatever a client declares.
max_packet_size 69632
"""
"""Mosquitto settings for the ingest, comments included; add `persistence_location` and listeners."""


def acl_text(*ingest_usernames: str) -> str:
    """The ingest clients read device channels and write server -> device ones (`cmd`, `ota/cmd`, `ack`);
    `%u` (a device) writes its own device channels and reads only its own server -> device topics."""
    ingest = [
        line
        for name in ingest_usernames
        for line in (
            f"user {name}",
            *(f"topic read {TOPIC_PREFIX}/+/{c.value}" for c in DEVICE_CHANNELS),
            *(f"topic write {TOPIC_PREFIX}/+/{c.value}" for c in COMMAND_CHANNELS),
            "",
        )
    ]
    return "\n".join(
        [
            *ingest,
            *(f"pattern write {TOPIC_PREFIX}/%u/{c.value}" for c in DEVICE_CHANNELS),
            *(f"pattern read {TOPIC_PREFIX}/%u/{c.value}" for c in COMMAND_CHANNELS),
            "",
        ]
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


class MosquittoSync:
    def __init__(self, sessions: sessionmaker[Session], settings: ServerSettings) -> None:
        assert settings.mosquitto_password_file
        self._sessions = sessions
        self._settings = settings
        self._password_file = Path(settings.mosquitto_password_file)
        self._acl_file = Path(settings.mosquitto_acl_file) if settings.mosquitto_acl_file else None
        self._ingest_hash = security.hash_device_secret(settings.ingest_password.get_secret_value())
        self._lock = threading.Lock()

    def password_text(self) -> str:
        with self._sessions() as session:
            rows = session.execute(
                select(Device.id, Device.secret_hash)
                .where(Device.secret_hash.is_not(None), Device.revoked_at.is_(None))
                .order_by(Device.id)
            ).all()
        ingest = self._settings.mqtt_ingest_usernames
        lines = [f"{name}:{self._ingest_hash}" for name in ingest]
        for device_id, secret_hash in rows:
            if self._settings.reserved_device_id(device_id):
                log.error("device %r is not written to the Mosquitto password file: reserved name", device_id)
                continue
            lines.append(f"{device_id}:{secret_hash}")
        return "\n".join(lines) + "\n"

    def sync(self) -> None:
        """Rewrite the files and ask Mosquitto to reload them."""
        with self._lock:
            _write_atomic(self._password_file, self.password_text())
            if self._acl_file:
                _write_atomic(self._acl_file, acl_text(*self._settings.mqtt_ingest_usernames))
            self._reload()

    def _reload(self) -> None:
        pid_file = self._settings.mosquitto_pid_file
        if not pid_file:
            return
        try:
            pid = int(Path(pid_file).read_text(encoding="utf-8").strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as err:
            log.error("cannot signal Mosquitto to reload (pid file %s): %s", pid_file, err)
