import json

import jsonschema
import pytest

from edgefleet.contracts import VersionedMessage, channel_of, contract_document, encode, model_card_schema
from tests.contracts.samples import sample_messages
from tests.contracts.test_model_card import card_fields


@pytest.mark.parametrize("message", sample_messages(), ids=lambda m: type(m).__name__)
def test_encoded_messages_validate_against_the_exported_schema(message: VersionedMessage) -> None:
    schema = contract_document()["messages"][channel_of(message).value]
    jsonschema.Draft202012Validator.check_schema(schema)
    payload = json.loads(encode(message))
    jsonschema.validate(payload, schema)
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate({**payload, "surprise": 1}, schema)


def test_contract_document_covers_every_channel_and_the_model_card() -> None:
    document = contract_document()
    assert set(document["messages"]) == {
        "status",
        "event",
        "telemetry",
        "ota/state",
        "sample",
        "cmd",
        "ota/cmd",
        "ack",
    }
    assert document["channels"]["cmd"]["direction"] == "server->device"
    assert document["channels"]["ack"] == {"direction": "server->device", "message": "Ack"}
    assert document["max_payload_bytes"] == 65536
    json.dumps(document)  # serializable as is


def test_model_card_schema_accepts_a_valid_card() -> None:
    from edgefleet.contracts import ModelCard, dump_model_card

    schema = model_card_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(dump_model_card(ModelCard.model_validate(card_fields()))), schema)
