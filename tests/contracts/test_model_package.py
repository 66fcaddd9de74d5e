import base64
import io
import tarfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgefleet.contracts import (
    ModelCard,
    PackageError,
    SignatureError,
    build_package,
    dump_model_card,
    key_id_for,
    read_package,
    sha256_hex,
    verify_signature,
)
from tests.contracts.test_model_card import card_fields

TFLITE = b"\x1c\x00\x00\x00TFL3" + bytes(range(200))


def card_json() -> bytes:
    return dump_model_card(ModelCard.model_validate(card_fields())).encode()


def keypair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(raw).decode()


def sign(private: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(private.sign(data)).decode()


def test_package_round_trips_and_is_deterministic() -> None:
    first, second = build_package(TFLITE, card_json()), build_package(TFLITE, card_json())
    assert first == second
    package = read_package(first)
    assert package.tflite == TFLITE
    assert package.card.model_id == "vib-ae"
    assert package.card_sha256 == sha256_hex(card_json())


def test_truncated_package_is_refused() -> None:
    data = build_package(TFLITE, card_json())
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        model = archive.getmember("model.tflite")
    end_of_model = model.offset_data + model.size
    for cut in (100, 700, model.offset_data + 4, end_of_model - 1):
        with pytest.raises(PackageError):
            read_package(data[:cut])
    with pytest.raises(PackageError):
        read_package(b"not a tar at all" * 64)


def test_extra_or_missing_members_are_refused() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in (("model.tflite", TFLITE), ("../evil.sh", b"rm -rf /")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(PackageError, match="unexpected package member"):
        read_package(buffer.getvalue())


def test_not_a_tflite_or_bad_card_is_refused() -> None:
    with pytest.raises(PackageError, match="TFL3"):
        build_package(b"hello world!", card_json())
    with pytest.raises(PackageError, match="model card schema"):
        build_package(TFLITE, b'{"model_id": "x"}')


def test_signature_verifies_and_rejects_tampering_and_wrong_keys() -> None:
    private, public = keypair()
    data = build_package(TFLITE, card_json())
    signature = sign(private, data)
    verify_signature(data, signature, public)
    tampered = bytearray(data)
    tampered[-600] ^= 0x01
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(bytes(tampered), signature, public)
    _, other_public = keypair()
    with pytest.raises(SignatureError):
        verify_signature(data, signature, other_public)
    with pytest.raises(SignatureError, match="base64"):
        verify_signature(data, "%%%", public)
    assert len(key_id_for(public)) == 16
    assert key_id_for(public) != key_id_for(other_public)
