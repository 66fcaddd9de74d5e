import pytest

from edgefleet.contracts import (
    Channel,
    TopicError,
    device_subscription,
    fleet_subscription,
    parse_topic,
    shared_subscription,
    topic_for,
)


@pytest.mark.parametrize("channel", list(Channel))
def test_topic_round_trip(channel: Channel) -> None:
    topic = topic_for("press-3", channel)
    assert topic == f"ef/v1/press-3/{channel.value}"
    address = parse_topic(topic)
    assert (address.device_id, address.channel) == ("press-3", channel)
    assert address.topic == topic


def test_direction_of_channels() -> None:
    assert {c for c in Channel if not c.from_device} == {Channel.CMD, Channel.OTA_CMD, Channel.ACK}


@pytest.mark.parametrize("device_id", ["", "a/b", "a+b", "a#", "-lead", "x" * 65, "sp ace", "ümlaut"])
def test_bad_device_ids_are_refused(device_id: str) -> None:
    with pytest.raises(TopicError, match="invalid device id"):
        topic_for(device_id, Channel.EVENT)


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("ef/v1/dev1", "not of the form"),
        ("xx/v1/dev1/event", "not of the form"),
        ("ef/v2/dev1/event", "version"),
        ("ef/v1/dev1/events", "unknown channel"),
        ("ef/v1/dev1/ota/status", "unknown channel"),
        ("ef/v1/+/event", "invalid device id"),
    ],
)
def test_bad_topics_say_why(topic: str, why: str) -> None:
    with pytest.raises(TopicError, match=why):
        parse_topic(topic)


def test_subscriptions() -> None:
    assert device_subscription("d1") == "ef/v1/d1/#"
    assert fleet_subscription() == "ef/v1/+/#"
    assert fleet_subscription(Channel.OTA_STATE) == "ef/v1/+/ota/state"
    assert shared_subscription("ingest", "ef/v1/+/#") == "$share/ingest/ef/v1/+/#"
