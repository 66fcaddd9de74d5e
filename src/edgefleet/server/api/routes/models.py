"""The model registry: upload signed packages, list, compare, default per device kind."""

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status

from edgefleet.contracts import DeviceKind, ModelManifest
from edgefleet.contracts.model_package import MAX_CARD_BYTES, MAX_PACKAGE_BYTES
from edgefleet.server.api.deps import AdminUser, ContextDep, CurrentUser, IdPath, IdQuery, SessionDep
from edgefleet.server.schemas import ModelComparison, ModelDetail, ModelPublic
from edgefleet.server.services import registry
from edgefleet.server.services.registry import BadModelError, ModelUpload

router = APIRouter(prefix="/models", tags=["models"])


def _read(upload: UploadFile | None, limit: int) -> bytes | None:
    if upload is None:
        return None
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"{upload.filename or 'a file'} is larger than {limit} bytes"
        )
    return data


@router.post("", status_code=status.HTTP_201_CREATED)
def upload_model(
    *,
    principal: AdminUser,
    session: SessionDep,
    context: ContextDep,
    model_tflite: Annotated[UploadFile, File(description="the directory's model.tflite")],
    model_card: Annotated[UploadFile, File(description="the directory's model_card.json")],
    report: Annotated[UploadFile | None, File(description="report.json of the model factory")] = None,
    self_test: Annotated[UploadFile | None, File(description="self_test.json: SelfTestCase list")] = None,
) -> ModelDetail:
    """Store a model directory as a signed package (admin). The version is the card's."""
    upload = ModelUpload(
        tflite=_read(model_tflite, MAX_PACKAGE_BYTES) or b"",
        card_json=_read(model_card, MAX_CARD_BYTES) or b"",
        report_json=_read(report, registry.MAX_REPORT_BYTES),
        self_test_json=_read(self_test, registry.MAX_SELF_TEST_BYTES),
    )
    try:
        row = registry.upload_model(session, principal, upload, secret=context.settings.secret_key)
    except BadModelError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    return registry.to_detail(row, registry.defaults(session, principal.org_id))


@router.get("")
def list_models(
    principal: CurrentUser,
    session: SessionDep,
    device_kind: DeviceKind | None = None,
    model_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ModelPublic]:
    """Your organization's models, grouped by model id, newest first."""
    rows = registry.list_models(session, principal.org_id, device_kind=device_kind, model_id=model_id)
    default_pks = registry.defaults(session, principal.org_id)
    return [registry.to_public(row, default_pks) for row in rows]


@router.get("/compare")
def compare_models(principal: CurrentUser, session: SessionDep, a: IdQuery, b: IdQuery) -> ModelComparison:
    """Two models side by side: metrics with deltas (b - a) and the card fields that differ."""
    return registry.compare(session, principal.org_id, a, b)


@router.get("/{model_pk}")
def read_model(model_pk: IdPath, principal: CurrentUser, session: SessionDep) -> ModelDetail:
    row = registry.get_model(session, principal.org_id, model_pk)
    return registry.to_detail(row, registry.defaults(session, principal.org_id))


@router.post("/{model_pk}/default")
def set_default_model(model_pk: IdPath, principal: AdminUser, session: SessionDep) -> ModelPublic:
    """Make this the default model of its device kind (admin)."""
    row = registry.set_default(session, principal, model_pk)
    return registry.to_public(row, registry.defaults(session, principal.org_id))


@router.get("/{model_pk}/manifest")
def read_model_manifest(
    model_pk: IdPath, principal: CurrentUser, session: SessionDep, context: ContextDep
) -> ModelManifest:
    """The manifest a rollout sends to devices (`ota/cmd`)."""
    return registry.manifest_for(session, principal.org_id, model_pk, context.settings.public_url)
