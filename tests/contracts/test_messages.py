import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from edgefleet.contracts import (
    MAX_PAYLOAD_BYTES,
    Channel,
    DeviceMismatchError,
    Event,
    MessageValidationError,
    OtaCommand,
    OtaState,
    PayloadTooLargeError,
    SchemaVersionError,
    Telemetry,
    TopicError,
    VersionedMessage,
    channel_of,
    decode,
    decode_topic,
    encode,
    topic_for,
)
from tests.contracts.samples import DEVICE, TS, sample_messages

SAMPLES = sample_messages()


def _ids(message: VersionedMessage) -> str:
    return f"{type(message).__name__}-{getattr(message, 'seq', getattr(message, 'command_id', ''))}"


def _payload(message: VersionedMessage) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(encode(message))
    return result


@pytest.mark.parametrize("message", SAMPLES, ids=_ids)
def test_round_trip_through_topic(message: VersionedMessage) -> None:
    channel = channel_of(message)
    address, decoded = decode_topic(topic_for(DEVICE, channel), encode(message))
    assert address.channel == channel
    assert decoded == message


@pytest.mark.parametrize("message", SAMPLES, ids=_ids)
def test_wire_form_is_compact_json_with_schema_version(message: VersionedMessage) -> None:
    payload = _payload(message)
    assert payload["schema"] == 1
    assert payload["ts"] == "2026-11-23T12:00:00.123000Z"
    assert None not in payload.values(), "absent optional fields are left out"


def test_every_channel_has_a_sample() -> None:
    assert {channel_of(m) for m in SAMPLES} == set(Channel)


def test_timestamps_are_normalized_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    event = Event(device_id=DEVICE, seq=1, ts=datetime(2026, 1, 1, 13, tzinfo=cet), kind="rule", reason="z")
    assert event.ts == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Event(device_id=DEVICE, seq=1, ts=datetime(2026, 1, 1), kind="rule", reason="z")


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda p: p.update(extra_field=1), MessageValidationError, "extra_field"),
        (lambda p: p.update(seq="7"), MessageValidationError, "seq"),
        (lambda p: p.update(seq=-1), MessageValidationError, "seq"),
        (lambda p: p.update(seq=1.5), MessageValidationError, "seq"),
        (lambda p: p.update(score=True), MessageValidationError, "score"),
        (lambda p: p.update(kind="explosion"), MessageValidationError, "kind"),
        (lambda p: p.update(ts="yesterday"), MessageValidationError, "ts"),
        (lambda p: p.update(ts="2026-11-23T12:00:00"), MessageValidationError, "timezone"),
        (lambda p: p.pop("threshold"), MessageValidationError, "needs `score` and `threshold`"),
        (lambda p: p.pop("device_id"), MessageValidationError, "device_id"),
        (lambda p: p.update(features={f"f{i}": 1.0 for i in range(33)}), MessageValidationError, "features"),
        (lambda p: p.update(schema=2), SchemaVersionError, "schema 2"),
        (lambda p: p.update(schema="1"), SchemaVersionError, "schema '1'"),
        (lambda p: p.pop("schema"), SchemaVersionError, "no `schema` field"),
    ],
)
def test_malformed_event_payloads_are_rejected(mutate: Any, error: type[Exception], match: str) -> None:
    payload = _payload(SAMPLES[1])
    mutate(payload)
    with pytest.raises(error, match=match):
        decode(Channel.EVENT, json.dumps(payload))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(literal: str) -> None:
    text = encode(SAMPLES[1]).decode().replace('"score":0.91', f'"score":{literal}')
    assert literal in text
    with pytest.raises(MessageValidationError, match="score"):
        decode(Channel.EVENT, text)


def test_non_finite_numbers_cannot_be_constructed() -> None:
    with pytest.raises(ValidationError, match="finite"):
        Telemetry(
            device_id=DEVICE,
            seq=1,
            ts=TS,
            mode="running",
            uptime_s=1,
            interval_s=1,
            windows=1,
            drift=float("nan"),
        )


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b"null", b"\xff\xfe\x00garbage", b'"text"'])
def test_non_json_or_non_object_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(MessageValidationError):
        decode(Channel.TELEMETRY, payload)


def test_oversized_payload_is_rejected_before_parsing() -> None:
    payload = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"
    with pytest.raises(PayloadTooLargeError, match=str(MAX_PAYLOAD_BYTES)):
        decode(Channel.EVENT, payload)


def test_oversized_message_cannot_be_encoded() -> None:
    big = Telemetry.model_construct(
        **{**SAMPLES[5].model_dump(), "rejected": {f"r{i}": i for i in range(9000)}}
    )
    with pytest.raises(PayloadTooLargeError):
        encode(big)


def test_payload_for_another_device_is_refused() -> None:
    with pytest.raises(DeviceMismatchError, match="pump-07"):
        decode_topic(topic_for("pump-08", Channel.EVENT), encode(SAMPLES[1]))


def test_payload_on_the_wrong_channel_is_refused() -> None:
    with pytest.raises(MessageValidationError):
        decode_topic(topic_for(DEVICE, Channel.TELEMETRY), encode(SAMPLES[1]))


def test_unknown_topic_is_refused() -> None:
    with pytest.raises(TopicError):
        decode_topic("ef/v1/pump-07/firmware", encode(SAMPLES[1]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "person"}, "needs `score`"),
        ({"kind": "sensor_fault"}, "needs `reason`"),
        ({"kind": "drift", "score": 1.0}, "needs `reason`"),
        ({"kind": "person", "score": 0.9, "thumbnail_jpeg": "not base64!"}, "base64"),
        ({"kind": "person", "score": 0.9, "thumbnail_jpeg": "A" * (48 * 1024 + 4)}, "at most"),
    ],
)
def test_event_kinds_require_their_fields(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Event(device_id=DEVICE, seq=1, ts=TS, **kwargs)


def test_ota_failure_needs_reason_and_update_needs_manifest() -> None:
    with pytest.raises(ValidationError, match="needs a `reason`"):
        OtaState(device_id=DEVICE, seq=1, ts=TS, state="ROLLED_BACK")
    with pytest.raises(ValidationError, match="needs a `manifest`"):
        OtaCommand(device_id=DEVICE, ts=TS, command_id="x", action="update")


def test_manifest_rejects_bad_hash_and_url() -> None:
    payload = _payload(SAMPLES[-1])
    payload["manifest"]["sha256"] = "XYZ"
    payload["manifest"]["url"] = "ftp://x"
    with pytest.raises(MessageValidationError, match=r"manifest\.(sha256|url)"):
        decode(Channel.OTA_CMD, json.dumps(payload))


def test_messages_are_immutable() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        SAMPLES[1].seq = 99  # type: ignore[attr-defined]
