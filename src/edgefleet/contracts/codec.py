"""JSON encoding and strict decoding of wire messages."""

from pathlib import Path
from typing import Final, TypeVar, cast

from pydantic import ValidationError

from edgefleet.contracts.base import MAX_PAYLOAD_BYTES, SCHEMA_VERSION, VersionedMessage
from edgefleet.contracts.errors import (
    ContractError,
    DeviceMismatchError,
    MessageValidationError,
    PayloadTooLargeError,
    SchemaVersionError,
)
from edgefleet.contracts.messages import (
    Ack,
    Command,
    Event,
    OtaCommand,
    OtaState,
    Status,
    Telemetry,
    WindowSample,
)
from edgefleet.contracts.model_card import ModelCard
from edgefleet.contracts.topics import Channel, TopicAddress, parse_topic

Message = Status | Event | Telemetry | OtaState | WindowSample | Command | OtaCommand | Ack

MESSAGE_TYPES: Final[dict[Channel, type[VersionedMessage]]] = {
    Channel.STATUS: Status,
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.OTA_STATE: OtaState,
    Channel.SAMPLE: WindowSample,
    Channel.CMD: Command,
    Channel.OTA_CMD: OtaCommand,
    Channel.ACK: Ack,
}
_MAX_REPORTED_ERRORS = 3
M = TypeVar("M", bound=VersionedMessage)


def channel_of(message: VersionedMessage) -> Channel:
    for channel, cls in MESSAGE_TYPES.items():
        if type(message) is cls:
            return channel
    raise ContractError(f"{type(message).__name__} is not a wire message type")


def encode(message: VersionedMessage) -> bytes:
    """Serialize to compact JSON; absent optional fields are left out."""
    data = message.model_dump_json(by_alias=True, exclude_none=True).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"{type(message).__name__} encodes to {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return data


def _describe(err: ValidationError) -> str:
    parts = []
    for item in err.errors()[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(p) for p in item["loc"]) or "<payload>"
        parts.append(f"{where}: {item['msg']}")
    more = err.error_count() - _MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _check_schema_version(err: ValidationError, payload: bytes | str) -> None:
    for item in err.errors():
        if item["loc"][:1] == ("schema",) and item["type"] != "missing":
            raise SchemaVersionError(
                f"payload declares schema {item.get('input')!r}; this code speaks schema {SCHEMA_VERSION}"
            ) from err


def decode_as(cls: type[M], payload: bytes | str, what: str | None = None) -> M:
    """Parse and strictly validate one JSON payload as `cls`."""
    what = what or cls.__name__
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"{what} payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        message = cls.model_validate_json(payload)
    except ValidationError as err:
        _check_schema_version(err, payload)
        raise MessageValidationError(f"invalid {what} payload: {_describe(err)}") from err
    if "schema_version" not in message.model_fields_set:
        raise SchemaVersionError(f"{what} payload has no `schema` field (expected {SCHEMA_VERSION})")
    return message


def decode(channel: Channel | str, payload: bytes | str) -> Message:
    """Decode a payload received on `channel`."""
    channel = Channel(channel)
    message = decode_as(MESSAGE_TYPES[channel], payload, what=f"{channel.value!r}")
    # MESSAGE_TYPES maps every channel to a Message class (an isinstance check here cost as much as
    # the rest of `decode` at ingest rates: pydantic's metaclass checks each class in Python)
    return cast(Message, message)


def decode_topic(topic: str, payload: bytes | str) -> tuple[TopicAddress, Message]:
    """Decode a payload with its topic; the payload must name the topic's device."""
    address = parse_topic(topic)
    message = decode(address.channel, payload)
    if message.device_id != address.device_id:
        raise DeviceMismatchError(
            f"payload names device {message.device_id!r} but was published on {address.device_id!r}'s topic"
        )
    return address, message


def load_model_card(path: Path) -> ModelCard:
    """Read and validate `model_card.json`, naming the file in any error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ContractError(f"cannot read model card {path}: {err.strerror}") from err
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as err:
        _check_schema_version(err, text)
        raise MessageValidationError(f"invalid model card {path}: {_describe(err)}") from err


def dump_model_card(card: ModelCard) -> str:
    return card.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n"
