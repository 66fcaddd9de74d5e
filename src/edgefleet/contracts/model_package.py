"""The signed model package: what the registry stores and devices download over the air.

A package is an uncompressed POSIX ustar archive holding exactly `model.tflite` and
`model_card.json`, written deterministically (sorted, mtime 0, uid/gid 0, mode 0644), so the same
model always gives the same bytes, the same sha256 and the same signature. Ustar is simple enough to
read on a microcontroller without a library.

The signature is Ed25519 over the whole package bytes. Public keys travel as standard base64 of the
32 raw key bytes; a key's id is the first 16 hex digits of the sha256 of those bytes.
"""

import base64
import binascii
import hashlib
import io
import tarfile
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edgefleet.contracts.errors import ContractError
from edgefleet.contracts.model_card import ModelCard

MODEL_MEMBER: Final = "model.tflite"
CARD_MEMBER: Final = "model_card.json"
PACKAGE_MEMBERS: Final = (CARD_MEMBER, MODEL_MEMBER)
MAX_PACKAGE_BYTES: Final = 16 * 1024 * 1024
MAX_CARD_BYTES: Final = 256 * 1024
PACKAGE_MEDIA_TYPE: Final = "application/x-edgefleet-model+tar"


class PackageError(ContractError):
    """A package that is not a well-formed edgefleet model package."""

    reason = "package"


class SignatureError(ContractError):
    """A signature that is missing, malformed, from an unknown key, or does not match."""

    reason = "signature"


@dataclass(frozen=True)
class ModelPackage:
    tflite: bytes
    card_json: bytes
    card: ModelCard

    @property
    def card_sha256(self) -> str:
        return sha256_hex(self.card_json)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_members(tflite: bytes, card_json: bytes) -> bytes:
    """The package's tar (card first, then model; no timestamps or owners), with no check of either."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in ((CARD_MEMBER, card_json), (MODEL_MEMBER, tflite)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_package(tflite: bytes, card_json: bytes) -> bytes:
    """The package bytes for a model and its card (deterministic)."""
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise PackageError("model.tflite is not a TFLite flatbuffer (no TFL3 identifier)")
    _parse_card(card_json)
    data = archive_members(tflite, card_json)
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageError(f"package is {len(data)} bytes; the limit is {MAX_PACKAGE_BYTES}")
    return data


def read_package(data: bytes) -> ModelPackage:
    """Parse package bytes; anything but exactly the two regular members raises PackageError."""
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageError(f"package is {len(data)} bytes; the limit is {MAX_PACKAGE_BYTES}")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                if not info.isreg() or info.name not in PACKAGE_MEMBERS or info.name in members:
                    raise PackageError(f"unexpected package member {info.name!r}")
                handle = archive.extractfile(info)
                if handle is None:
                    raise PackageError(f"cannot read package member {info.name!r}")
                data_read = handle.read()
                if len(data_read) != info.size:  # tarfile reads a cut-off member short, silently
                    raise PackageError(f"package member {info.name!r} is truncated")
                members[info.name] = data_read
    except (tarfile.TarError, EOFError) as err:
        raise PackageError(f"not a model package (truncated or not a tar archive): {err}") from err
    missing = [name for name in PACKAGE_MEMBERS if name not in members]
    if missing:
        raise PackageError(f"package lacks {', '.join(missing)}")
    tflite = members[MODEL_MEMBER]
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise PackageError("model.tflite is not a TFLite flatbuffer (no TFL3 identifier)")
    return ModelPackage(tflite, members[CARD_MEMBER], _parse_card(members[CARD_MEMBER]))


def _parse_card(card_json: bytes) -> ModelCard:
    if len(card_json) > MAX_CARD_BYTES:
        raise PackageError(f"model_card.json is {len(card_json)} bytes; the limit is {MAX_CARD_BYTES}")
    try:
        return ModelCard.model_validate_json(card_json)
    except ValidationError as err:
        raise PackageError(f"model_card.json does not match the model card schema: {err}") from err


def key_id_for(public_key_b64: str) -> str:
    return sha256_hex(_decode_b64(public_key_b64, "public key"))[:16]


def verify_signature(data: bytes, signature_b64: str, public_key_b64: str) -> None:
    """Raise SignatureError unless `signature_b64` is the key's Ed25519 signature of `data`."""
    raw_key = _decode_b64(public_key_b64, "public key")
    raw_signature = _decode_b64(signature_b64, "signature")
    try:
        key = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError as err:
        raise SignatureError(f"not an Ed25519 public key: {err}") from err
    try:
        key.verify(raw_signature, data)
    except InvalidSignature as err:
        raise SignatureError("the signature does not match the package (tampered or wrong key)") from err


def _decode_b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise SignatureError(f"the {what} is not valid base64") from err
