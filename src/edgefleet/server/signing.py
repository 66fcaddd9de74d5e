"""Each organization's Ed25519 signing key for model packages.

The key is generated on first use. Its private half is stored AES-256-GCM encrypted under a key
derived (HKDF-SHA256) from `EDGEFLEET_SECRET_KEY`, with the organization and key id as associated
data, so a ciphertext copied to another organization's row does not decrypt. It never leaves
this module: callers get signatures and the public key only.
"""

import base64
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefleet.contracts.model_package import key_id_for
from edgefleet.server.db.models import SigningKey
from edgefleet.server.errors import ServerError

log = logging.getLogger(__name__)
_HKDF_SALT = b"edgefleet signing keys"
_HKDF_INFO = b"model package signing key encryption v1"
_NONCE_BYTES = 12


class SigningError(ServerError):
    """The organization's signing key cannot be used (for example EDGEFLEET_SECRET_KEY changed)."""


def _wrapping_key(secret: SecretStr | str) -> AESGCM:
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(raw.encode()))


def _associated_data(org_id: int, key_id: str) -> bytes:
    return f"edgefleet org {org_id} key {key_id}".encode()


def _create(session: Session, org_id: int, secret: SecretStr | str) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    public_b64 = base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    key_id = key_id_for(public_b64)
    nonce = os.urandom(_NONCE_BYTES)
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    sealed = nonce + _wrapping_key(secret).encrypt(nonce, raw_private, _associated_data(org_id, key_id))
    row = SigningKey(org_id=org_id, key_id=key_id, public_key=public_b64, private_key_encrypted=sealed)
    try:
        with session.begin_nested():  # two first uses at once: one insert wins, the other reads it
            session.add(row)
    except IntegrityError:
        existing = session.scalar(select(SigningKey).where(SigningKey.org_id == org_id))
        if existing is None:
            raise
        return existing
    log.info("generated signing key %s for organization %d", key_id, org_id)
    return row


def _key_row(session: Session, org_id: int, secret: SecretStr | str) -> SigningKey:
    row = session.scalar(select(SigningKey).where(SigningKey.org_id == org_id))
    return row if row is not None else _create(session, org_id, secret)


def _private_key(row: SigningKey, secret: SecretStr | str) -> Ed25519PrivateKey:
    sealed = row.private_key_encrypted
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        raw = _wrapping_key(secret).decrypt(nonce, ciphertext, _associated_data(row.org_id, row.key_id))
    except InvalidTag as err:
        raise SigningError(
            f"the signing key {row.key_id} of organization {row.org_id} cannot be decrypted: "
            "EDGEFLEET_SECRET_KEY differs from the one it was created with"
        ) from err
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(session: Session, org_id: int, *, secret: SecretStr | str) -> tuple[str, str]:
    """(key id, base64 public key) of the organization, generating the key on first use."""
    row = _key_row(session, org_id, secret)
    return row.key_id, row.public_key


def sign(session: Session, org_id: int, data: bytes, *, secret: SecretStr | str) -> tuple[str, str]:
    """(base64 Ed25519 signature of `data`, key id) with the organization's key."""
    row = _key_row(session, org_id, secret)
    signature = _private_key(row, secret).sign(data)
    return base64.b64encode(signature).decode(), row.key_id
