"""The server's VAPID key for Web Push (RFC 8292): generated on first use and kept in the database,
its private half sealed under `EDGEFLEET_SECRET_KEY` like the organizations' signing keys. Every
server process sharing the database uses the same key, so browser subscriptions (bound to the
public key) stay valid across restarts and workers."""

import base64
import logging

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefleet.server.db.models import NotifyServerKey
from edgefleet.server.notify.sealing import seal, unseal

log = logging.getLogger(__name__)
NAME = "vapid"
_PURPOSE = b"vapid key v1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _row(session: Session, secret: SecretStr) -> NotifyServerKey:
    row = session.get(NotifyServerKey, NAME)
    if row is not None:
        return row
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    row = NotifyServerKey(
        name=NAME,
        public_key=_b64url(public),
        private_key_sealed=seal(secret, NAME, {"raw": _b64url(raw)}, purpose=_PURPOSE),
    )
    try:
        with session.begin_nested():  # two first uses at once: one insert wins, the other reads it
            session.add(row)
    except IntegrityError:
        existing = session.get(NotifyServerKey, NAME)
        if existing is None:
            raise
        return existing
    log.info("generated the server's VAPID key for Web Push")
    return row


def public_key(session: Session, secret: SecretStr) -> str:
    """The applicationServerKey browsers subscribe with (base64url, uncompressed P-256 point)."""
    return _row(session, secret).public_key


def private_raw(session: Session, secret: SecretStr) -> str:
    """The private key as py_vapid's `from_raw` takes it (base64url of 32 bytes)."""
    raw: str = unseal(secret, NAME, _row(session, secret).private_key_sealed, purpose=_PURPOSE)["raw"]
    return raw
