"""Channel secrets (SMTP passwords, webhook keys, Apprise URLs with tokens) at rest: AES-256-GCM under
a key derived (HKDF-SHA256) from `EDGEFLEET_SECRET_KEY`, the organization as associated data, like
the organizations' signing keys (`server/signing.py`). The API never returns them."""

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from edgefleet.server.errors import ServerError

_SALT = b"edgefleet notifications"
_NONCE_BYTES = 12


class SealError(ServerError):
    """Sealed secrets cannot be opened: EDGEFLEET_SECRET_KEY changed since they were stored."""


def _aead(secret: SecretStr, purpose: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose)
    return AESGCM(hkdf.derive(secret.get_secret_value().encode()))


def seal(
    secret: SecretStr, scope: str, values: dict[str, Any], purpose: bytes = b"channel secrets v1"
) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    plain = json.dumps(values, separators=(",", ":")).encode()
    return nonce + _aead(secret, purpose).encrypt(nonce, plain, scope.encode())


def unseal(
    secret: SecretStr, scope: str, sealed: bytes | None, purpose: bytes = b"channel secrets v1"
) -> dict[str, Any]:
    if not sealed:
        return {}
    try:
        plain = _aead(secret, purpose).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], scope.encode())
    except InvalidTag as err:
        raise SealError(
            f"the stored secrets of {scope} cannot be decrypted: EDGEFLEET_SECRET_KEY differs from the "
            "one they were stored with; enter them again"
        ) from err
    values: dict[str, Any] = json.loads(plain)
    return values


def channel_scope(org_id: int) -> str:
    """The associated data of an organization's channel secrets."""
    return f"org {org_id} notification channels"
