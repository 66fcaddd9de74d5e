"""What the device refuses before anything of a package is loaded, each with a stable reason."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgefleet.contracts import ModelManifest, SelfTestCase
from edgefleet.edge.ota import verify
from edgefleet.edge.ota.errors import VerificationError
from edgefleet.edge.ota.verify import DeviceProfile, verify_package, version_at_least
from tests.edge.modelkit import AXES
from tests.edge.ota.conftest import Models
from tests.edge.ota.kit import SigningKey, copy_model, manifest_for, package_of

URL = "http://127.0.0.1:9/ota/packages/x"
PROFILE = DeviceProfile(
    kind="vibration",
    axes=tuple(AXES),
    units=("g", "g", "g", "dps", "dps", "dps"),
    sample_rate_hz=200.0,
    runtime_version="0.1.0",
)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every backend the verifier creates (a refused package must create none)."""
    created: list[str] = []
    real = getattr(verify, "create_backend")  # noqa: B009 (the name the verifier looks up)

    def recording(name: str, bundle: Any, arena: int | None = None) -> Any:
        created.append(bundle.card.model_version)
        return real(name, bundle, arena)

    monkeypatch.setattr(verify, "create_backend", recording)
    return created


def good(models: Models, key: SigningKey, **overrides: Any) -> ModelManifest:
    cases = overrides.pop("self_test", models.v2_self_test)
    return manifest_for(models.v2_package, URL, key, cases, **overrides)


def refused(data: bytes, manifest: ModelManifest, key: SigningKey, profile: DeviceProfile = PROFILE) -> str:
    with pytest.raises(VerificationError) as err:
        verify_package(data, manifest, [key.trusted], profile)
    assert str(err.value), "a refusal needs a message"
    return err.value.reason


def test_a_good_package_passes_every_check(models: Models, signing_key: SigningKey, loads: list[str]) -> None:
    package = verify_package(models.v2_package, good(models, signing_key), [signing_key.trusted], PROFILE)
    assert package.card.model_version == "0.0.2"
    assert loads == ["0.0.2"]


def flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("truncated", "truncated"),
        ("tampered", "sha256_mismatch"),
        ("tampered_with_matching_sha", "bad_signature"),
        ("unsigned", "unsigned"),
        ("wrongly_signed", "bad_signature"),
        ("unknown_key", "unknown_key"),
        ("manifest_names_another_version", "manifest_mismatch"),
        ("card_sha256_differs", "card_mismatch"),
        ("needs_newer_runtime", "incompatible:runtime"),
        ("oversize", "oversize"),
    ],
)
def test_refusals_before_loading(
    models: Models, signing_key: SigningKey, loads: list[str], case: str, reason: str
) -> None:
    data = models.v2_package
    other = SigningKey()
    manifest = good(models, signing_key)
    from edgefleet.contracts import sha256_hex

    variants: dict[str, Callable[[], tuple[bytes, ModelManifest]]] = {
        "truncated": lambda: (data[:-512], manifest),
        "tampered": lambda: (flip(data, 700), manifest),
        "tampered_with_matching_sha": lambda: (
            flip(data, 700),
            good(models, signing_key, sha256=sha256_hex(flip(data, 700))),
        ),
        "unsigned": lambda: (data, good(models, signing_key, signature="")),
        "wrongly_signed": lambda: (data, good(models, signing_key, signature=other.sign(data))),
        "unknown_key": lambda: (data, good(models, other)),
        "manifest_names_another_version": lambda: (data, good(models, signing_key, model_version="0.0.3")),
        "card_sha256_differs": lambda: (data, good(models, signing_key, model_card_sha256="0" * 64)),
        "needs_newer_runtime": lambda: (data, good(models, signing_key, min_runtime_version="0.10.0")),
        "oversize": lambda: (data + b"\0" * 512, manifest),
    }
    body, m = variants[case]()
    assert refused(body, m, signing_key) == reason
    assert loads == [], "a refused package must never be loaded"


def test_signed_garbage_is_not_parsed_as_a_model(signing_key: SigningKey, loads: list[str]) -> None:
    junk = b"\x00" * 10240
    manifest = ModelManifest.model_validate(
        {
            "model_id": "test-ae",
            "model_version": "0.0.2",
            "url": URL,
            "sha256": __import__("hashlib").sha256(junk).hexdigest(),
            "size": len(junk),
            "min_runtime_version": "0.1.0",
            "signature": signing_key.sign(junk),
            "key_id": signing_key.key_id,
        }
    )
    assert refused(junk, manifest, signing_key) == "bad_package"
    assert loads == []


def test_without_key_id_any_trusted_key_may_have_signed(models: Models, signing_key: SigningKey) -> None:
    manifest = good(models, signing_key, key_id=None)
    verify_package(models.v2_package, manifest, [SigningKey().trusted, signing_key.trusted], PROFILE)
    with pytest.raises(VerificationError) as err:
        verify_package(models.v2_package, manifest, [], PROFILE)
    assert err.value.reason == "unknown_key"


@pytest.mark.parametrize(
    ("change", "profile", "reason"),
    [
        ({"device_kind": "camera"}, PROFILE, "incompatible:kind"),
        ({"sensor__units": ["g", "g", "g", "rad_s", "rad_s", "rad_s"]}, PROFILE, "incompatible:sensor"),
        ({"sensor__axes": ["x", "y", "z", "gx", "gy", "gz"]}, PROFILE, "incompatible:sensor"),
        ({}, DeviceProfile(**{**PROFILE.__dict__, "sample_rate_hz": 400.0}), "incompatible:sensor"),
        ({"min_runtime_version": "1.0.0"}, PROFILE, "incompatible:runtime"),
        ({"output__dtype": "float32"}, PROFILE, "incompatible:io"),
        ({}, DeviceProfile(**{**PROFILE.__dict__, "arena_bytes": 512}), "arena"),
    ],
)
def test_incompatible_models_are_refused_unloaded(
    models: Models,
    signing_key: SigningKey,
    loads: list[str],
    tmp_path: Path,
    change: dict[str, Any],
    profile: DeviceProfile,
    reason: str,
) -> None:
    directory = copy_model(models.v2, tmp_path / "m", **change) if change else models.v2
    data = package_of(directory)
    manifest = manifest_for(data, URL, signing_key, models.v2_self_test)
    assert refused(data, manifest, signing_key, profile) == reason
    assert loads == []


def shifted(cases: list[SelfTestCase], by: int) -> list[SelfTestCase]:
    return [
        c.model_copy(update={"expected_int8": [max(-128, min(127, v + by)) for v in c.expected_int8]})
        for c in cases
    ]


def test_self_test_catches_a_model_that_computes_something_else(
    models: Models, signing_key: SigningKey
) -> None:
    assert refused(
        models.v2_package, good(models, signing_key, self_test=shifted(models.v2_self_test, 5)), signing_key
    ) == ("self_test_failed")
    # within the tolerance is a pass: int8 kernels may differ by one step
    verify_package(
        models.v2_package,
        good(models, signing_key, self_test=shifted(models.v2_self_test, 1)),
        [signing_key.trusted],
        PROFILE,
    )
    short = [models.v2_self_test[0].model_copy(update={"input_int8": [0, 1, 2]})]
    assert refused(models.v2_package, good(models, signing_key, self_test=short), signing_key) == (
        "self_test_failed"
    )


def test_a_manifest_without_self_test_is_refused_unless_allowed(
    models: Models, signing_key: SigningKey
) -> None:
    manifest = good(models, signing_key, self_test=[])
    assert refused(models.v2_package, manifest, signing_key) == "no_self_test"
    verify_package(models.v2_package, manifest, [signing_key.trusted], PROFILE, require_self_test=False)


@pytest.mark.parametrize("with_packaging", [True, False])
def test_versions_compare_as_versions(monkeypatch: pytest.MonkeyPatch, with_packaging: bool) -> None:
    if not with_packaging:
        monkeypatch.setitem(sys.modules, "packaging.version", None)
    assert version_at_least("0.10.0", "0.9.0")
    assert version_at_least("0.1.0", "0.1")
    assert version_at_least("1.2", "1.2.0")
    assert not version_at_least("0.1.0", "0.1.1")
    assert not version_at_least("0.9.9", "0.10.0")
    assert not version_at_least("0.0.0+unknown", "0.1.0")


def _signed_package(
    models: Models, key: SigningKey, tflite: bytes, **card: Any
) -> tuple[bytes, ModelManifest]:
    """A package the server signed around `tflite` (a compromised or buggy registry)."""
    import json

    from edgefleet.contracts import build_package

    data = json.loads((models.v2 / "model_card.json").read_text(encoding="utf-8"))
    data.update(card)
    package = build_package(tflite, json.dumps(data).encode())
    return package, manifest_for(package, URL, key, models.v2_self_test)


@pytest.mark.parametrize("keep", [64, 1000, -512])
def test_a_signed_truncated_model_is_refused_not_crashed(
    models: Models, signing_key: SigningKey, loads: list[str], keep: int
) -> None:
    """Issue 18 finding 6: a struct.error escaped verify_package; now a refusal with a reason."""
    tflite = (models.v2 / "model.tflite").read_bytes()
    package, manifest = _signed_package(models, signing_key, tflite[:keep], flash_bytes=len(tflite[:keep]))
    assert refused(package, manifest, signing_key) == "bad_model"
    assert loads == []


def test_a_card_that_misdescribes_its_model_is_refused(
    models: Models, signing_key: SigningKey, loads: list[str]
) -> None:
    tflite = (models.v2 / "model.tflite").read_bytes()
    package, manifest = _signed_package(models, signing_key, tflite, flash_bytes=1)
    with pytest.raises(VerificationError) as err:
        verify_package(package, manifest, [signing_key.trusted], PROFILE)
    assert err.value.reason == "card_mismatch" and "flash_bytes is 1" in str(err.value)
    assert loads == []


def test_an_older_signed_version_of_the_running_model_is_refused(
    models: Models, signing_key: SigningKey, loads: list[str]
) -> None:
    manifest = good(models, signing_key)
    with pytest.raises(VerificationError) as err:
        verify_package(
            models.v2_package, manifest, [signing_key.trusted], PROFILE, running=("test-ae", "0.0.10")
        )
    assert err.value.reason == "older_version" and loads == []
    # the same version again, a newer one, another model, or an explicit downgrade: allowed
    for running in [("test-ae", "0.0.2"), ("test-ae", "0.0.1"), ("other-ae", "9.0.0")]:
        verify_package(models.v2_package, manifest, [signing_key.trusted], PROFILE, running=running)
    verify_package(
        models.v2_package,
        manifest,
        [signing_key.trusted],
        PROFILE,
        running=("test-ae", "1.0"),
        allow_downgrade=True,
    )
