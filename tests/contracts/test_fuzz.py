"""Property tests: whatever arrives, decoding either returns a valid message or a ContractError."""

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.contracts import (
    COMMISSIONING_STATUSES,
    EVENT_KINDS,
    MESSAGE_TYPES,
    Channel,
    CommissioningReport,
    ContractError,
    Event,
    channel_of,
    decode,
    decode_topic,
    encode,
    topic_for,
)
from tests.contracts.samples import sample_messages

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
VALID_PAYLOADS = [(m, json.loads(encode(m))) for m in sample_messages()]


@settings(max_examples=300)
@given(st.sampled_from(list(Channel)), st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_as_other_errors(channel: Channel, payload: bytes) -> None:
    try:
        message = decode(channel, payload)
    except ContractError as err:
        assert str(err), "a refusal says why"
    else:  # the rare byte string that is a valid message decodes to the channel's type
        assert type(message) is MESSAGE_TYPES[channel]


@settings(max_examples=300)
@given(st.text(max_size=80), st.binary(max_size=64))
def test_arbitrary_topics_never_escape_as_other_errors(topic: str, payload: bytes) -> None:
    try:
        address, message = decode_topic(topic, payload)
    except ContractError as err:
        assert str(err), "a refusal says why"
    else:
        assert address.topic == topic and type(message) is MESSAGE_TYPES[address.channel]


@settings(max_examples=400)
@given(st.sampled_from(VALID_PAYLOADS), st.data())
def test_mutated_payloads_are_valid_or_rejected_cleanly(
    sample: tuple[Any, dict[str, Any]], data: st.DataObject
) -> None:
    message, payload = sample
    payload = dict(payload)
    key = data.draw(st.sampled_from(sorted(payload)) | st.text(min_size=1, max_size=8))
    if data.draw(st.booleans()):
        payload.pop(key, None)
    else:
        payload[key] = data.draw(json_values)
    channel = channel_of(message)
    try:
        decoded = decode(channel, json.dumps(payload))
    except ContractError:
        return
    # Whatever was accepted must survive its own round trip unchanged.
    assert decode(channel, encode(decoded)) == decoded


finite = st.floats(allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0)
reports = st.builds(
    CommissioningReport,
    status=st.sampled_from(COMMISSIONING_STATUSES),
    windows=st.integers(min_value=0, max_value=2**53),
    threshold=finite,
    card_threshold=finite,
    target_far=fractions,
    confidence=fractions,
    method=st.sampled_from(["lognormal_tolerance", "order_statistic"]),
    spread_ratio_median=st.floats(min_value=0.0, max_value=1e9),
    spread_ratio_max=st.floats(min_value=0.0, max_value=1e9),
    fault_visibility=st.none() | fractions,
)
events = st.sampled_from(EVENT_KINDS).flatmap(
    lambda kind: st.builds(
        Event,
        device_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
        seq=st.integers(min_value=0, max_value=2**53),
        ts=st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        kind=st.just(kind),
        score=finite,
        threshold=finite,
        reason=st.from_regex(r"[a-z_]{1,16}", fullmatch=True),
        features=st.dictionaries(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True), finite, max_size=32),
        # a commissioning event carries its report
        commissioning=reports if kind == "commissioning" else st.none(),
    )
)


@settings(max_examples=200)
@given(events)
def test_generated_events_round_trip_exactly(event: Event) -> None:
    address, decoded = decode_topic(topic_for(event.device_id, Channel.EVENT), encode(event))
    assert address.device_id == event.device_id
    assert decoded == event
