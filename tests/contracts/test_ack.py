"""The `ack` channel: server -> device, inclusive seq ranges, merged and ascending."""

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.contracts import (
    COMMAND_CHANNELS,
    DEVICE_CHANNELS,
    MAX_ACK_RANGES,
    Ack,
    Channel,
    DeviceMismatchError,
    MessageValidationError,
    ack_ranges,
    decode,
    decode_topic,
    encode,
    fleet_subscription,
    topic_for,
)
from tests.contracts.samples import DEVICE, TS


def test_ack_is_a_server_to_device_channel_no_device_subscription_matches() -> None:
    assert Channel.ACK in COMMAND_CHANNELS and Channel.ACK not in DEVICE_CHANNELS
    assert topic_for(DEVICE, Channel.ACK) == f"ef/v1/{DEVICE}/ack"
    assert all(fleet_subscription(c) != fleet_subscription(Channel.ACK) for c in DEVICE_CHANNELS)


def test_ack_ranges_merge_sort_and_deduplicate() -> None:
    assert ack_ranges([]) == []
    assert ack_ranges([7, 1, 3, 2, 2, 9, 8]) == [(1, 3), (7, 9)]
    assert ack_ranges([5]) == [(5, 5)]
    assert ack_ranges([0, 2, 4]) == [(0, 0), (2, 2), (4, 4)]


@given(st.sets(st.integers(min_value=0, max_value=10_000), max_size=200))
def test_ack_ranges_cover_exactly_the_seqs(seqs: set[int]) -> None:
    ranges = ack_ranges(seqs)
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges)), "merged, ascending"
    if ranges:
        assert set(Ack(device_id=DEVICE, ts=TS, ranges=ranges).covers()) == seqs


def test_wire_form_is_arrays_of_two() -> None:
    ack = Ack(device_id=DEVICE, ts=TS, ranges=[(1, 3), (7, 7)])
    payload = json.loads(encode(ack))
    assert payload == {
        "schema": 1,
        "ts": "2026-11-23T12:00:00.123000Z",
        "device_id": DEVICE,
        "ranges": [[1, 3], [7, 7]],
    }
    address, decoded = decode_topic(topic_for(DEVICE, Channel.ACK), encode(ack))
    assert address.channel == Channel.ACK and decoded == ack
    assert isinstance(decoded, Ack) and decoded.covers() == [1, 2, 3, 7]


@pytest.mark.parametrize(
    "ranges",
    [[], [[3, 2]], [[-1, 2]], [[1, 2, 3]], [[1]], [["1", "2"]], [[1, 2]] * (MAX_ACK_RANGES + 1)],
    ids=["empty", "reversed", "negative", "triple", "single", "strings", "too-many"],
)
def test_bad_ranges_are_refused(ranges: list[list[object]]) -> None:
    payload = json.dumps({"schema": 1, "ts": "2026-11-23T12:00:00Z", "device_id": DEVICE, "ranges": ranges})
    with pytest.raises(MessageValidationError):
        decode(Channel.ACK, payload)


def test_an_ack_for_another_device_is_refused_on_a_device_topic() -> None:
    ack = Ack(device_id="other-1", ts=TS, ranges=[(1, 1)])
    with pytest.raises(DeviceMismatchError):
        decode_topic(topic_for(DEVICE, Channel.ACK), encode(ack))
