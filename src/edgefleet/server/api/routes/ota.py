"""Device-facing OTA: package download with the device's credentials (resumable)."""

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from edgefleet.contracts.model_package import PACKAGE_MEDIA_TYPE
from edgefleet.server.api.deps import DeviceAuth, IdPath, SessionDep
from edgefleet.server.http_range import RangeNotSatisfiableError, byte_range
from edgefleet.server.services import registry

router = APIRouter(prefix="/ota", tags=["ota"])


@router.get(
    "/packages/{model_pk}",
    response_class=Response,
    responses={
        200: {"content": {PACKAGE_MEDIA_TYPE: {}}, "description": "the whole package"},
        206: {"description": "the requested byte range (`Range: bytes=N-` resumes a download)"},
        416: {"description": "a range outside the package or one this server does not serve"},
    },
)
def download_package(
    model_pk: IdPath,
    device: DeviceAuth,
    session: SessionDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Response:
    """A model package of the device's own organization, by HTTP Basic auth (device id, secret).

    The ETag is the package's sha256 in quotes; with `If-Range` set to another ETag the whole
    package is sent, so a resumed download never mixes two packages."""
    row, data = registry.package_bytes(session, device.org_id, model_pk)
    etag = f'"{row.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-transform"}
    if range_header is None or (if_range is not None and if_range.strip() != etag):
        return Response(data, media_type=PACKAGE_MEDIA_TYPE, headers=headers)
    try:
        first, last = byte_range(range_header, len(data))
    except RangeNotSatisfiableError:
        return Response(
            status_code=status.HTTP_416_RANGE_NOT_SATISFIABLE,
            headers={**headers, "Content-Range": f"bytes */{len(data)}"},
        )
    return Response(
        data[first : last + 1],
        status_code=status.HTTP_206_PARTIAL_CONTENT,
        media_type=PACKAGE_MEDIA_TYPE,
        headers={**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"},
    )
