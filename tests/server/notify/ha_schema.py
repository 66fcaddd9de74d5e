"""Home Assistant's MQTT discovery schema for the two entity types edgefleet announces, as JSON Schema.

Encoded from Home Assistant's documentation and source (integrations `sensor.mqtt` and
`binary_sensor.mqtt`; `homeassistant/components/mqtt/schemas.py`: MQTT_ENTITY_COMMON_SCHEMA,
MQTT_AVAILABILITY_SCHEMA, MQTT_ENTITY_DEVICE_INFO_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA; the platforms'
_PLATFORM_SCHEMA_BASE over MQTT_RO_SCHEMA). Full key names only (discovery also accepts
abbreviations, which edgefleet does not use). Home Assistant drops keys it does not know; here an
unknown key is an error, so a typo cannot hide. Checked against the docs of 2025-2026.
"""

from typing import Any

TOPIC = {"type": "string", "minLength": 1, "not": {"pattern": "[#+]"}}
TEMPLATE = {"type": "string", "minLength": 1}
AVAILABILITY_ITEM = {
    "type": "object",
    "required": ["topic"],
    "additionalProperties": False,
    "properties": {
        "topic": TOPIC,
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "value_template": TEMPLATE,
    },
}
DEVICE = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [
        {"required": ["identifiers"], "properties": {"identifiers": {"minItems": 1}}},
        {"required": ["connections"], "properties": {"connections": {"minItems": 1}}},
    ],
    "properties": {
        "identifiers": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "connections": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "manufacturer": {"type": "string"},
        "model": {"type": "string"},
        "model_id": {"type": "string"},
        "name": {"type": "string"},
        "hw_version": {"type": "string"},
        "serial_number": {"type": "string"},
        "sw_version": {"type": "string"},
        "via_device": {"type": "string"},
        "suggested_area": {"type": "string"},
        "configuration_url": {"type": "string", "pattern": "^(https?://|homeassistant://)"},
    },
}
ORIGIN = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "sw_version": {"type": "string"},
        "support_url": {"type": "string", "pattern": "^https?://"},
    },
}
COMMON: dict[str, Any] = {
    # MQTT_BASE_SCHEMA + MQTT_RO_SCHEMA
    "state_topic": TOPIC,
    "value_template": TEMPLATE,
    "qos": {"enum": [0, 1, 2]},
    "encoding": {"type": "string"},
    # MQTT_AVAILABILITY_SCHEMA (availability_topic and availability are exclusive)
    "availability_topic": TOPIC,
    "availability_template": TEMPLATE,
    "payload_available": {"type": "string"},
    "payload_not_available": {"type": "string"},
    "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability": {"type": "array", "items": AVAILABILITY_ITEM},
    # MQTT_ENTITY_COMMON_SCHEMA
    "device": DEVICE,
    "origin": ORIGIN,
    "enabled_by_default": {"type": "boolean"},
    "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": {"type": "string"},
    "icon": {"type": "string", "pattern": "^[a-z0-9-]+:[a-z0-9-]+$"},
    "json_attributes_topic": TOPIC,
    "json_attributes_template": TEMPLATE,
    "object_id": {"type": "string"},
    "default_entity_id": {"type": "string"},
    "unique_id": {"type": "string"},
    "name": {"type": ["string", "null"]},
    "platform": {"type": "string"},
}
SENSOR_STATE_CLASSES = ["measurement", "measurement_angle", "total", "total_increasing"]
SENSOR = {
    "type": "object",
    "required": ["state_topic"],
    "additionalProperties": False,
    "not": {"required": ["availability", "availability_topic"]},
    "properties": {
        **COMMON,
        "device_class": {"type": ["string", "null"]},
        "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"},
        "last_reset_value_template": TEMPLATE,
        "options": {"type": "array", "minItems": 1},
        "suggested_display_precision": {"type": "integer", "minimum": 0},
        "state_class": {"enum": [*SENSOR_STATE_CLASSES, None]},
        "unit_of_measurement": {"type": ["string", "null"]},
    },
}
BINARY_SENSOR_DEVICE_CLASSES = [
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas",
    "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
    "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
]  # fmt: skip
BINARY_SENSOR = {
    "type": "object",
    "required": ["state_topic"],
    "additionalProperties": False,
    "not": {"required": ["availability", "availability_topic"]},
    "properties": {
        **COMMON,
        "device_class": {"enum": [*BINARY_SENSOR_DEVICE_CLASSES, None]},
        "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"},
        "off_delay": {"type": "integer", "minimum": 0},
        "payload_on": {"type": "string"},
        "payload_off": {"type": "string"},
    },
}
SCHEMAS = {"sensor": SENSOR, "binary_sensor": BINARY_SENSOR}
DISCOVERY_TOPIC = (
    r"^(?P<prefix>[^/]+)/(?P<component>[a-z_]+)/"
    r"(?:(?P<node>[a-zA-Z0-9_-]+)/)?(?P<object>[a-zA-Z0-9_-]+)/config$"
)
