"""Export the whole contract as JSON Schema, for firmware authors and other languages."""

from typing import Any

from edgefleet.contracts.base import MAX_PAYLOAD_BYTES, SCHEMA_VERSION
from edgefleet.contracts.codec import MESSAGE_TYPES
from edgefleet.contracts.model_card import ModelCard
from edgefleet.contracts.notifications import notification_schema
from edgefleet.contracts.topics import DEVICE_ID_PATTERN, TOPIC_PREFIX

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def message_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per channel, keyed by channel name (e.g. `ota/state`)."""
    return {
        channel.value: {"$schema": JSON_SCHEMA_DIALECT, **cls.model_json_schema(by_alias=True)}
        for channel, cls in MESSAGE_TYPES.items()
    }


def model_card_schema() -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **ModelCard.model_json_schema(by_alias=True)}


def contract_document() -> dict[str, Any]:
    """The contract in one document: topics, limits and every schema."""
    return {
        "title": "edgefleet wire contract",
        "schema_version": SCHEMA_VERSION,
        "topic": f"{TOPIC_PREFIX}/{{device_id}}/{{channel}}",
        "device_id_pattern": DEVICE_ID_PATTERN,
        "max_payload_bytes": MAX_PAYLOAD_BYTES,
        "encoding": "UTF-8 JSON; NaN and Infinity are not allowed; unknown fields are rejected",
        "channels": {
            channel.value: {
                "direction": "device->server" if channel.from_device else "server->device",
                "message": cls.__name__,
            }
            for channel, cls in MESSAGE_TYPES.items()
        },
        "messages": message_schemas(),
        "model_card": model_card_schema(),
        "notification": notification_schema(),  # webhook body (docs/notifications.md)
    }
