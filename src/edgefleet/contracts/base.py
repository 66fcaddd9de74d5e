"""Building blocks shared by every wire message: strict config and constrained types."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from edgefleet.contracts.topics import DEVICE_ID_PATTERN

SCHEMA_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 64 * 1024
# A thumbnail must leave room for the rest of the event inside the payload limit.
MAX_THUMBNAIL_B64_CHARS: Final = 48 * 1024


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+-]+$")]
Version = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]*$")
]
ShortText = Annotated[str, StringConstraints(max_length=256)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0, le=2**53)]
Int8 = Annotated[int, Field(ge=-128, le=127)]

DeviceKind = Literal["vibration", "camera"]
DEVICE_KINDS: Final[tuple[str, ...]] = ("vibration", "camera")


def _is_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as err:
        raise ValueError(f"not valid base64: {err}") from err
    return value


Base64Text = Annotated[str, AfterValidator(_is_base64)]


class WireModel(BaseModel):
    """Strict: unknown fields, wrong types and NaN/inf are errors, never coerced."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class VersionedMessage(WireModel):
    """A top-level message: carries the schema version it was written for."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    ts: UtcDatetime = Field(description="UTC time the message was created, ISO 8601")


def utc_now() -> datetime:
    return datetime.now(UTC)
