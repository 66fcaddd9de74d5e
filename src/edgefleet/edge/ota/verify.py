"""Decide whether a downloaded package may run on this device, before anything of it is loaded.

Order matters: size and sha256 first, then the Ed25519 signature against the trusted keys, and only
then is the archive parsed; then the card against the manifest, compatibility with this device
(kind, sensor, sample rate, runtime version, int8 I/O), a load into the inference backend within
the device's arena, and every self-test case of the manifest. Each refusal is a VerificationError
with a short stable reason.
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefleet.contracts import (
    ModelCard,
    ModelManifest,
    ModelPackage,
    PackageError,
    SignatureError,
    read_package,
    sha256_hex,
    verify_signature,
)
from edgefleet.contracts.model_file import card_mismatches, inspect_tflite
from edgefleet.edge.backends import InferenceBackend, create_backend
from edgefleet.edge.config import TrustedKey
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.ota.errors import VerificationError
from edgefleet.edge.pipeline import Scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceProfile:
    """What the device is: a new model must fit it."""

    kind: str
    axes: tuple[str, ...]
    units: tuple[str, ...]
    sample_rate_hz: float
    runtime_version: str
    backend: str = "tflm"
    arena_bytes: int | None = None


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version (`1.2.10rc1+x` -> (1, 2, 10)), trailing zeros cut."""
    numbers: list[int] = []
    for part in re.split(r"[.]", version.split("+", 1)[0]):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def version_at_least(version: str, minimum: str) -> bool:
    """`version >= minimum` as versions (1.2.10 > 1.2.9): packaging's rules when installed."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging is optional: compare the numeric releases
        return _release(version) >= _release(minimum)
    try:
        return Version(version) >= Version(minimum)
    except InvalidVersion:
        return _release(version) >= _release(minimum)


def check_signature(data: bytes, manifest: ModelManifest, trusted_keys: Sequence[TrustedKey]) -> None:
    if not manifest.signature:
        raise VerificationError("unsigned", "the manifest carries no signature")
    if manifest.key_id is not None:
        keys = [k for k in trusted_keys if k.key_id == manifest.key_id]
        if not keys:
            raise VerificationError("unknown_key", f"unknown signing key {manifest.key_id}")
    else:
        keys = list(trusted_keys)
        if not keys:
            raise VerificationError("unknown_key", "unknown signing key (the device trusts no key)")
    for key in keys:
        try:
            verify_signature(data, manifest.signature, key.public_key)
            return
        except SignatureError as err:
            last = err
    raise VerificationError("bad_signature", str(last))


def check_compatible(card: ModelCard, profile: DeviceProfile, min_runtime_version: str | None = None) -> None:
    """Refuse a card that does not fit this device (also checked at boot, for the slot's model)."""

    def refuse(what: str, message: str) -> None:
        raise VerificationError(f"incompatible:{what}", message)

    if card.device_kind != profile.kind:
        refuse("kind", f"the model is for {card.device_kind} devices; this is a {profile.kind} device")
    if card.task != "anomaly_detection" or card.feature_spec is None or card.sensor is None:
        refuse("task", f"this device runs anomaly detection models with a sensor spec, not {card.task}")
    assert card.sensor is not None and card.feature_spec is not None
    if tuple(card.sensor.axes) != profile.axes:
        refuse("sensor", f"the model reads axes {card.sensor.axes}; the sensor gives {list(profile.axes)}")
    if tuple(card.sensor.units) != profile.units:
        refuse(
            "sensor", f"the model expects units {card.sensor.units}; the sensor gives {list(profile.units)}"
        )
    rate = card.feature_spec.sample_rate_hz
    if rate != profile.sample_rate_hz:
        refuse("sensor", f"the model wants {rate} Hz; the sensor runs at {profile.sample_rate_hz} Hz")
    for minimum in {card.min_runtime_version, min_runtime_version or card.min_runtime_version}:
        if not version_at_least(profile.runtime_version, minimum):
            refuse(
                "runtime", f"the model needs runtime >= {minimum}; this device runs {profile.runtime_version}"
            )
    if card.input.dtype != "int8" or card.output.dtype != "int8":
        refuse("io", f"the device runs int8 models; the card says {card.input.dtype} -> {card.output.dtype}")
    if card.input.quantization is None or card.output.quantization is None:
        refuse("io", "int8 input and output need quantization parameters")


def check_model_file(bundle: ModelBundle) -> None:
    """The flatbuffer walked in bounds and the card's facts checked against it, before any load."""
    try:
        facts = inspect_tflite(bundle.tflite)
    except PackageError as err:
        raise VerificationError("bad_model", str(err)) from err
    problems = card_mismatches(bundle.card, facts)
    if problems:
        raise VerificationError("card_mismatch", "; ".join(problems))


def check_not_older(card: ModelCard, running: tuple[str, str] | None) -> None:
    """Anti-rollback: a signed package of the running model at an older version is refused (an
    attacker replaying an old, validly signed manifest). A deliberate rollback uses the device's
    own previous slot (`rollback` action), not a download."""
    if running is None or card.model_id != running[0]:
        return
    if not version_at_least(card.model_version, running[1]):
        raise VerificationError(
            "older_version",
            f"{card.model_id} {card.model_version} is older than the running {running[1]}",
        )


def load_backend(bundle: ModelBundle, profile: DeviceProfile) -> InferenceBackend:
    card = bundle.card
    if profile.arena_bytes is not None and card.arena_bytes > profile.arena_bytes:
        raise VerificationError(
            "arena", f"the model needs a {card.arena_bytes}-byte arena; the device has {profile.arena_bytes}"
        )
    try:
        backend = create_backend(profile.backend, bundle, profile.arena_bytes)
        Scorer(card, backend)  # the features the card names must be the ones dsp computes
    except EdgeError as err:
        reason = "arena" if "arena" in str(err) else "load_failed"
        raise VerificationError(reason, str(err)) from err
    except Exception as err:  # a damaged model must be a refusal, whatever the parser raises
        raise VerificationError("load_failed", f"{type(err).__name__}: {err}") from err
    return backend


def run_self_test(backend: InferenceBackend, manifest: ModelManifest, card: ModelCard) -> None:
    n_in = int(np.prod(card.input.shape))
    n_out = int(np.prod(card.output.shape))
    for i, case in enumerate(manifest.self_test):
        if len(case.input_int8) != n_in or len(case.expected_int8) != n_out:
            raise VerificationError(
                "self_test_failed",
                f"case {i}: {len(case.input_int8)} -> {len(case.expected_int8)} values; "
                f"the model takes {n_in} -> {n_out}",
            )
        try:
            out = np.asarray(
                backend.invoke(np.asarray(case.input_int8, dtype=np.int8)), dtype=np.int64
            ).ravel()
        except EdgeError as err:
            raise VerificationError("self_test_failed", f"case {i}: invoke failed: {err}") from err
        diff = int(np.max(np.abs(out - np.asarray(case.expected_int8, dtype=np.int64))))
        if diff > case.tolerance:
            raise VerificationError(
                "self_test_failed", f"case {i}: output differs by {diff} steps (tolerance {case.tolerance})"
            )


def verify_package(
    data: bytes,
    manifest: ModelManifest,
    trusted_keys: Sequence[TrustedKey],
    profile: DeviceProfile,
    *,
    require_self_test: bool = True,
    running: tuple[str, str] | None = None,
    allow_downgrade: bool = False,
) -> ModelPackage:
    """Every check, in order; returns the parsed package or raises VerificationError. `running` is
    the (model_id, version) in use: an older version of it is refused unless `allow_downgrade`."""
    if len(data) < manifest.size:
        raise VerificationError("truncated", f"{len(data)} of {manifest.size} bytes")
    if len(data) > manifest.size:
        raise VerificationError("oversize", f"{len(data)} bytes; the manifest says {manifest.size}")
    digest = sha256_hex(data)
    if digest != manifest.sha256:
        raise VerificationError("sha256_mismatch", f"sha256 {digest[:16]}... is not the manifest's")
    check_signature(data, manifest, trusted_keys)
    try:
        package = read_package(data)
    except PackageError as err:
        raise VerificationError("bad_package", str(err)) from err
    card = package.card
    if (card.model_id, card.model_version) != (manifest.model_id, manifest.model_version):
        raise VerificationError(
            "manifest_mismatch",
            f"the package holds {card.model_id} {card.model_version}, "
            f"the manifest names {manifest.model_id} {manifest.model_version}",
        )
    if manifest.model_card_sha256 is not None and package.card_sha256 != manifest.model_card_sha256:
        raise VerificationError("card_mismatch", "the model card's sha256 is not the manifest's")
    if not allow_downgrade:
        check_not_older(card, running)
    check_compatible(card, profile, manifest.min_runtime_version)
    if require_self_test and not manifest.self_test:
        raise VerificationError("no_self_test", "the manifest carries no self-test cases")
    bundle = ModelBundle(Path("<ota package>"), card, package.tflite)
    check_model_file(bundle)
    backend = load_backend(bundle, profile)
    run_self_test(backend, manifest, card)
    log.info(
        "verified %s %s (%d self-test cases)", card.model_id, card.model_version, len(manifest.self_test)
    )
    return package
