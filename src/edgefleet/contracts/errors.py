"""Errors raised when a message does not honour the wire contract."""


class ContractError(ValueError):
    """Base class: a payload, topic or model card that breaks the contract.

    `reason` is a short stable code, used by ingest to count rejects by reason.
    """

    reason = "invalid"


class TopicError(ContractError):
    """A topic that is not `ef/v1/{device_id}/{channel}` with a known channel."""

    reason = "topic"


class PayloadTooLargeError(ContractError):
    """A payload over the contract's size limit (checked before parsing)."""

    reason = "too_large"


class SchemaVersionError(ContractError):
    """A payload that declares a schema version this code does not speak."""

    reason = "schema_version"


class MessageValidationError(ContractError):
    """A payload that is not valid JSON or does not match its channel's schema."""

    reason = "invalid"


class DeviceMismatchError(ContractError):
    """A payload whose `device_id` differs from the device named in its topic."""

    reason = "device_mismatch"
