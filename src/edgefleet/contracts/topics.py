"""The MQTT topic scheme: `ef/v1/{device_id}/{channel}`."""

import re
from dataclasses import dataclass
from enum import StrEnum

from edgefleet.contracts.errors import TopicError

TOPIC_ROOT = "ef"
TOPIC_VERSION = "v1"
TOPIC_PREFIX = f"{TOPIC_ROOT}/{TOPIC_VERSION}"

# MQTT forbids '+', '#' and '/' inside a level; we also keep ids short and printable for
# firmware buffers and file names.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)


class Channel(StrEnum):
    """What a topic carries. The value is the topic suffix after the device id."""

    STATUS = "status"
    EVENT = "event"
    TELEMETRY = "telemetry"
    OTA_STATE = "ota/state"
    SAMPLE = "sample"
    CMD = "cmd"
    OTA_CMD = "ota/cmd"
    ACK = "ack"

    @property
    def from_device(self) -> bool:
        """True for channels a device publishes, False for server -> device messages."""
        return self not in (Channel.CMD, Channel.OTA_CMD, Channel.ACK)


DEVICE_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if c.from_device)
COMMAND_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if not c.from_device)


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed topic."""

    device_id: str
    channel: Channel

    @property
    def topic(self) -> str:
        return topic_for(self.device_id, self.channel)


def is_valid_device_id(device_id: str) -> bool:
    return bool(_DEVICE_ID_RE.fullmatch(device_id))


def validate_device_id(device_id: str) -> str:
    if not is_valid_device_id(device_id):
        raise TopicError(
            f"invalid device id {device_id!r}: use 1-64 characters of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return device_id


def topic_for(device_id: str, channel: Channel | str) -> str:
    """Build the topic for one device and channel."""
    return f"{TOPIC_PREFIX}/{validate_device_id(device_id)}/{Channel(channel).value}"


def parse_topic(topic: str) -> TopicAddress:
    """Split a topic into device id and channel, or raise TopicError saying why."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != TOPIC_ROOT:
        raise TopicError(f"topic {topic!r} is not of the form {TOPIC_PREFIX}/<device_id>/<channel>")
    if parts[1] != TOPIC_VERSION:
        raise TopicError(f"topic {topic!r} uses version {parts[1]!r}; this server speaks {TOPIC_VERSION}")
    device_id = validate_device_id(parts[2])
    suffix = "/".join(parts[3:])
    try:
        channel = Channel(suffix)
    except ValueError as err:
        known = ", ".join(c.value for c in Channel)
        raise TopicError(f"topic {topic!r} has unknown channel {suffix!r} (known: {known})") from err
    return TopicAddress(device_id, channel)


def device_subscription(device_id: str) -> str:
    """Wildcard for everything one device publishes or receives."""
    return f"{TOPIC_PREFIX}/{validate_device_id(device_id)}/#"


def fleet_subscription(channel: Channel | None = None) -> str:
    """Wildcard for all devices, optionally one channel only."""
    return f"{TOPIC_PREFIX}/+/{Channel(channel).value}" if channel else f"{TOPIC_PREFIX}/+/#"


def shared_subscription(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription, so several ingest workers split the load."""
    return f"$share/{group}/{topic_filter}"
