"""The model registry: signed model packages per organization, versions, comparison, defaults.

An upload is a model directory's `model.tflite` and `model_card.json` (plus, optionally, the
factory's `report.json` and `self_test.json`). The registry builds the package
(`contracts.build_package`), signs it with the organization's key, and stores package, card,
metrics, lineage and self-test cases. The version is the card's `model_version`; a model id and
version exist once per organization.
"""

import json
import math
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from edgefleet.contracts import ModelCard, ModelManifest, SelfTestCase
from edgefleet.contracts.model_package import PackageError, build_package, sha256_hex
from edgefleet.server import signing
from edgefleet.server.db.models import ModelDefault, ModelPackage, ModelRow
from edgefleet.server.errors import ConflictError, NotFoundError, ServerError
from edgefleet.server.schemas import FieldComparison, ModelComparison, ModelDetail, ModelPublic
from edgefleet.server.services import audit
from edgefleet.server.services.model_check import ModelCheckError, check_model
from edgefleet.server.services.principal import Principal

PACKAGE_PATH: Final = "/api/v1/ota/packages/{model_pk}"
"""Where devices download a package (see `api/routes/ota.py`)."""
MAX_REPORT_BYTES: Final = 2 * 1024 * 1024
MAX_SELF_TEST_BYTES: Final = 1024 * 1024
MAX_SELF_TEST_CASES: Final = 8
# Card fields the comparison shows, as dotted paths into the card.
COMPARED_CARD_FIELDS: Final = (
    "task",
    "device_kind",
    "min_runtime_version",
    "threshold.value",
    "threshold.policy",
    "threshold.percentile",
    "threshold.target_false_alarm_rate",
    "arena_bytes",
    "flash_bytes",
    "ops",
    "input.shape",
    "input.dtype",
    "input.quantization",
    "output.shape",
    "output.dtype",
    "output.quantization",
    "labels",
    "feature_spec.sample_rate_hz",
    "feature_spec.window",
    "feature_spec.hop",
    "feature_spec.sets",
    "feature_spec.bands_hz",
    "feature_spec.names",
    "score_stats.mean",
    "score_stats.std",
    "score_stats.p50",
    "score_stats.p95",
    "score_stats.p99",
    "score_stats.max",
    "score_stats.count",
    "training_data_sha256",
    "lineage.config_sha256",
    "lineage.parent_model",
    "lineage.framework",
)


class BadModelError(ServerError):
    """An upload that is not a usable model: a bad card, not TFLite, a bad self-test or report."""


@dataclass(frozen=True)
class ModelUpload:
    tflite: bytes
    card_json: bytes
    report_json: bytes | None = None
    self_test_json: bytes | None = None


def upload_model(session: Session, principal: Principal, upload: ModelUpload, *, secret: Any) -> ModelRow:
    """Validate, package, sign and store a model (admin). `secret` is the server's secret key."""
    principal.require("admin")
    card = parse_card(upload.card_json)
    try:
        package = build_package(upload.tflite, upload.card_json)
    except PackageError as err:
        raise BadModelError(str(err)) from err
    report = parse_report(upload.report_json)
    cases = parse_self_test(upload.self_test_json, card)
    org_id = principal.org_id
    if _find(session, org_id, card.model_id, card.model_version) is not None:
        raise ConflictError(f"model {card.model_id} version {card.model_version} is already in the registry")
    try:  # last before signing: it loads the model in a child process
        check_model(upload.tflite, card)
    except ModelCheckError as err:
        raise BadModelError(str(err)) from err
    signature, key_id = signing.sign(session, org_id, package, secret=secret)
    row = ModelRow(
        org_id=org_id,
        model_id=card.model_id,
        version=card.model_version,
        sha256=sha256_hex(package),
        size=len(package),
        card=card.model_dump(mode="json", by_alias=True, exclude_none=True),
        device_kind=card.device_kind,
        task=card.task,
        signature=signature,
        key_id=key_id,
        card_sha256=sha256_hex(upload.card_json),
        min_runtime_version=card.min_runtime_version,
        metrics=_finite(dict(card.metrics)),
        lineage={
            "training_data_sha256": card.training_data_sha256,
            "config_sha256": card.lineage.config_sha256,
            "parent_model": card.lineage.parent_model,
            "framework": card.lineage.framework,
        },
        report=report,
        self_test=[case.model_dump(mode="json") for case in cases],
        uploaded_by=principal.user.id,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            session.add(ModelPackage(model_pk=row.id, data=package))
    except IntegrityError as err:  # a concurrent upload of the same id and version won
        raise ConflictError(
            f"model {card.model_id} version {card.model_version} is already in the registry"
        ) from err
    audit.record(
        session,
        org_id,
        principal.user.id,
        "model.upload",
        "model",
        row.id,
        model_id=row.model_id,
        version=row.version,
        sha256=row.sha256,
        key_id=key_id,
    )
    return row


def parse_card(card_json: bytes) -> ModelCard:
    try:
        return ModelCard.model_validate_json(card_json)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in err.errors()[:5]
        )
        raise BadModelError(f"model_card.json is not a valid model card: {problems}") from err


def parse_report(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    if len(data) > MAX_REPORT_BYTES:
        raise BadModelError(f"report.json is {len(data)} bytes; the limit is {MAX_REPORT_BYTES}")
    try:
        report = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadModelError(f"report.json is not JSON: {err}") from err
    if not isinstance(report, dict):
        raise BadModelError("report.json must hold a JSON object")
    cleaned: dict[str, Any] = _finite(report)
    return cleaned


def parse_self_test(data: bytes | None, card: ModelCard) -> list[SelfTestCase]:
    """The cases of `self_test.json` (a JSON list of SelfTestCase objects), checked against the card."""
    if data is None:
        return []
    if len(data) > MAX_SELF_TEST_BYTES:
        raise BadModelError(f"self_test.json is {len(data)} bytes; the limit is {MAX_SELF_TEST_BYTES}")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadModelError(f"self_test.json is not JSON: {err}") from err
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SELF_TEST_CASES:
        raise BadModelError(f"self_test.json must be a list of 1 to {MAX_SELF_TEST_CASES} self-test cases")
    if card.input.dtype != "int8" or card.output.dtype != "int8":
        raise BadModelError("self-test cases need a model with int8 input and output")
    n_in, n_out = math.prod(card.input.shape), math.prod(card.output.shape)
    cases = []
    for i, item in enumerate(raw):
        try:
            case = SelfTestCase.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadModelError(f"self_test.json case {i}: {where}: {first['msg']}") from err
        if len(case.input_int8) != n_in or len(case.expected_int8) != n_out:
            raise BadModelError(
                f"self_test.json case {i} has {len(case.input_int8)} inputs and {len(case.expected_int8)} "
                f"outputs; the model card says {n_in} and {n_out}"
            )
        cases.append(case)
    return cases


def _finite(value: Any) -> Any:
    """NaN and infinities (which JSON columns refuse on PostgreSQL) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _find(session: Session, org_id: int, model_id: str, version: str) -> ModelRow | None:
    query = select(ModelRow).where(
        ModelRow.org_id == org_id, ModelRow.model_id == model_id, ModelRow.version == version
    )
    return session.scalar(query)


def get_model(session: Session, org_id: int, model_pk: int) -> ModelRow:
    row = session.get(ModelRow, model_pk)
    if row is None or row.org_id != org_id:
        raise NotFoundError(f"no model {model_pk}")
    return row


def list_models(
    session: Session, org_id: int, *, device_kind: str | None = None, model_id: str | None = None
) -> list[ModelRow]:
    """The organization's models by model id, newest upload first (without reports and cards)."""
    query = (
        select(ModelRow)
        .where(ModelRow.org_id == org_id)
        .options(defer(ModelRow.report), defer(ModelRow.card))
        .order_by(ModelRow.model_id, ModelRow.id.desc())
    )
    if device_kind is not None:
        query = query.where(ModelRow.device_kind == device_kind)
    if model_id is not None:
        query = query.where(ModelRow.model_id == model_id)
    return list(session.scalars(query))


def package_bytes(session: Session, org_id: int, model_pk: int) -> tuple[ModelRow, bytes]:
    row = get_model(session, org_id, model_pk)
    package = session.get(ModelPackage, row.id)
    if package is None:
        raise NotFoundError(f"model {model_pk} has no package")
    return row, package.data


def defaults(session: Session, org_id: int) -> dict[str, int]:
    """Device kind -> the primary key of its default model."""
    rows = session.scalars(select(ModelDefault).where(ModelDefault.org_id == org_id))
    return {d.device_kind: d.model_pk for d in rows}


def default_model(session: Session, org_id: int, device_kind: str) -> ModelRow | None:
    chosen = session.get(ModelDefault, (org_id, device_kind))
    return None if chosen is None else session.get(ModelRow, chosen.model_pk)


def set_default(session: Session, principal: Principal, model_pk: int) -> ModelRow:
    """Make the model the default of its device kind (admin); the previous default stops being it."""
    principal.require("admin")
    row = get_model(session, principal.org_id, model_pk)
    current = session.get(ModelDefault, (principal.org_id, row.device_kind))
    previous = None if current is None else current.model_pk
    if current is None:
        session.add(
            ModelDefault(
                org_id=principal.org_id,
                device_kind=row.device_kind,
                model_pk=row.id,
                set_by=principal.user.id,
            )
        )
    elif previous != row.id:
        current.model_pk, current.set_by = row.id, principal.user.id
    if previous != row.id:
        audit.record(
            session,
            principal.org_id,
            principal.user.id,
            "model.default",
            "model",
            row.id,
            device_kind=row.device_kind,
            model_id=row.model_id,
            version=row.version,
            previous=previous,
        )
    session.flush()
    return row


def to_public(row: ModelRow, default_pks: dict[str, int]) -> ModelPublic:
    public = ModelPublic.model_validate(row)
    return public.model_copy(
        update={
            "is_default": default_pks.get(row.device_kind) == row.id,
            "self_test_cases": len(row.self_test),
        }
    )


def to_detail(row: ModelRow, default_pks: dict[str, int]) -> ModelDetail:
    public = to_public(row, default_pks)
    return ModelDetail(**public.model_dump(), card=row.card, report=row.report, self_test=row.self_test)


def manifest_for(session: Session, org_id: int, model_pk: int, base_url: str) -> ModelManifest:
    """What a device needs to fetch and verify the model; `base_url` is the server's public URL."""
    row = get_model(session, org_id, model_pk)
    return ModelManifest(
        model_id=row.model_id,
        model_version=row.version,
        url=base_url.rstrip("/") + PACKAGE_PATH.format(model_pk=row.id),
        sha256=row.sha256,
        size=row.size,
        min_runtime_version=row.min_runtime_version,
        signature=row.signature,
        key_id=row.key_id,
        model_card_sha256=row.card_sha256,
        self_test=[SelfTestCase.model_validate(case) for case in row.self_test],
    )


def compare(session: Session, org_id: int, a_pk: int, b_pk: int) -> ModelComparison:
    """Metrics side by side (b - a) and the card fields that matter for a deployment."""
    a, b = get_model(session, org_id, a_pk), get_model(session, org_id, b_pk)
    default_pks = defaults(session, org_id)
    names = sorted(set(a.metrics) | set(b.metrics))
    metrics = [_field(name, a.metrics.get(name), b.metrics.get(name)) for name in names]
    card = [_field("package_bytes", a.size, b.size)]
    card += [_field(path, _dig(a.card, path), _dig(b.card, path)) for path in COMPARED_CARD_FIELDS]
    return ModelComparison(
        a=to_public(a, default_pks), b=to_public(b, default_pks), metrics=metrics, card=card
    )


def _dig(card: dict[str, Any], path: str) -> Any:
    node: Any = card
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _field(name: str, a: Any, b: Any) -> FieldComparison:
    delta = float(b) - float(a) if _is_number(a) and _is_number(b) else None
    return FieldComparison(name=name, a=a, b=b, delta=delta, changed=a != b)
