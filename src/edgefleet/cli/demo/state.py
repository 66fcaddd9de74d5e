"""The demo's secrets, kept in the demo home (`state.json`, mode 0600) so a second run reuses them.

Device secrets are persisted rather than re-issued on every run: a real device keeps its secret in
flash across reboots, and the server stores only a hash, so the demo devices do what real ones do.
The file sits next to the database it unlocks and holds nothing the demo home does not already
grant. The server's signing key and ingest password are random per demo home instead of the
built-in defaults, so even demo session tokens cannot be forged from the public source.
"""

import json
import logging
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from edgefleet.cli.demo.options import DemoError

log = logging.getLogger(__name__)
DEMO_EMAIL = "demo@example.com"


def _token(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


class DemoState(BaseModel):
    secret_key: str = Field(default_factory=lambda: _token(48))
    ingest_password: str = Field(default_factory=lambda: _token(24))
    email: str = DEMO_EMAIL
    password: str = Field(default_factory=lambda: _token(12))
    device_secrets: dict[str, str] = Field(default_factory=dict)
    """Vibration device id -> its MQTT password (camera nodes keep theirs in their own store)."""


def load_state(path: Path) -> DemoState:
    """The saved state; a missing or unreadable file starts a new one (devices are then re-issued)."""
    try:
        return DemoState.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return DemoState()
    except (OSError, ValueError, ValidationError) as err:
        log.warning("ignoring unreadable demo state %s (%s): new credentials will be issued", path, err)
        return DemoState()


def save_state(path: Path, state: DemoState) -> None:
    """Atomically, owner-only from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode otherwise
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as err:
        raise DemoError(f"cannot write the demo state {path}: {err.strerror}") from err
