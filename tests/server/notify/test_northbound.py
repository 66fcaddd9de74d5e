"""Northbound MQTT to a real Mosquitto: alarm transitions and device states republished, and Home
Assistant discovery payloads that validate against Home Assistant's schema for their entity types."""

import json
import re
import threading
from typing import Any

import jsonschema
import pytest
from sqlalchemy import delete

from edgefleet.contracts import AlarmNotification
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device
from edgefleet.server.ingest import IngestStore
from edgefleet.server.notify.northbound import ALARM_KINDS, node_id
from tests.server import seed
from tests.server.mqtt_helpers import device_client, wait_until
from tests.server.notify.conftest import World
from tests.server.notify.ha_schema import DISCOVERY_TOPIC, SCHEMAS
from tests.support.services import MosquittoBroker

PREFIX = "plant/edgefleet"


class Retained:
    """Everything published under `#`, the latest payload per topic."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}
        self.all: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()

    def on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self.lock:
            self.latest[message.topic] = message.payload
            self.all.append((message.topic, message.payload, bool(message.retain)))

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.latest.get(topic)


@pytest.mark.needs("mosquitto")
def test_states_alarms_and_home_assistant_discovery(world: World, mosquitto: MosquittoBroker) -> None:
    channel = world.channel("mqtt", {"url": mosquitto.url, "topic_prefix": PREFIX}, name="plant broker")
    world.rule(channel_ids=[channel])
    telemetry = seed.telemetry(world.device_id, 1).model_copy(update={"score_p95": 0.61})
    seed.ingest(IngestStore(world.sessions), seed.status(world.device_id), telemetry)
    seen = Retained()
    worker = world.worker()
    with device_client(mosquitto.port, "plant-scada") as scada:
        scada.on_message = seen.on_message
        scada.subscribe("#", qos=1)
        assert worker.publish_states() > 0
        node = node_id(world.device_id)
        score_config = f"homeassistant/sensor/{node}/score/config"
        wait_until(lambda: seen.get(score_config) is not None, 10, "discovery configs")
        wait_until(lambda: seen.get(f"{PREFIX}/devices/{world.device_id}/state") is not None, 10, "the state")

        configs = {t: json.loads(p) for t, p in seen.latest.items() if t.startswith("homeassistant/")}
        assert len(configs) == 1 + len(ALARM_KINDS)
        unique_ids = set()
        for topic, config in configs.items():
            match = re.fullmatch(DISCOVERY_TOPIC, topic)
            assert match is not None, topic
            jsonschema.validate(config, SCHEMAS[match["component"]])
            unique_ids.add(config["unique_id"])
            assert config["device"]["identifiers"] == [node]
            assert {a["topic"] for a in config["availability"]} == {
                f"{PREFIX}/status", f"{PREFIX}/devices/{world.device_id}/availability",
            }  # fmt: skip
        assert len(unique_ids) == len(configs)
        sensor = configs[score_config]
        state = json.loads(seen.latest[sensor["state_topic"]])
        assert sensor["value_template"] == "{{ value_json.score }}" and state["score"] == 0.61
        assert state["online"] is True and state["open_alarms"] == []
        assert seen.get(f"{PREFIX}/status") == b"online"
        assert seen.get(f"{PREFIX}/devices/{world.device_id}/availability") == b"online"
        anomaly_topic = configs[f"homeassistant/binary_sensor/{node}/alarm_anomaly/config"]["state_topic"]
        assert seen.get(anomaly_topic) == b"OFF"

        alarm_id = world.open_alarm()
        assert worker.run_once().sent == 1  # the transition, routed by the rule
        worker.publish_states()  # the binary sensor's retained state comes from the state pass
        wait_until(lambda: seen.get(anomaly_topic) == b"ON", 10, "the alarm's binary sensor ON")
        [(_, body, retained)] = [m for m in seen.all if m[0] == f"{PREFIX}/alarms/{world.device_id}/anomaly"]
        note = AlarmNotification.model_validate_json(body)
        assert (
            not retained and note.change == "opened" and note.alarm is not None and note.alarm.id == alarm_id
        )
        worker.publish_states()
        wait_until(
            lambda: b'"open_alarms":["anomaly"]' in (seen.get(sensor["state_topic"]) or b""), 10, "state"
        )

        world.clear_alarm(alarm_id)
        worker.run_once()
        assert worker.publish_states() == 3  # what changed: the state, the alarm's binary state; status
        wait_until(lambda: seen.get(anomaly_topic) == b"OFF", 10, "the alarm's binary sensor OFF")
        published = len(seen.all)
        assert worker.publish_states() == 1  # only `online` on the status topic
        with transaction(world.sessions) as session:  # the device leaves: Home Assistant forgets it
            session.execute(delete(Device).where(Device.id == world.device_id))
        worker.publish_states()
        wait_until(lambda: seen.get(score_config) == b"", 10, "the emptied discovery config")
        assert all(seen.get(t) == b"" for t in configs)
        assert len(seen.all) > published
        worker.close()
        wait_until(lambda: seen.get(f"{PREFIX}/status") == b"offline", 10, "offline on a clean stop")


@pytest.mark.needs("mosquitto")
def test_home_assistant_stays_available_when_one_of_two_workers_stops(
    world: World, mosquitto: MosquittoBroker
) -> None:
    channel = world.channel("mqtt", {"url": mosquitto.url, "topic_prefix": PREFIX}, name="plant broker")
    world.rule(channel_ids=[channel])
    seed.ingest(IngestStore(world.sessions), seed.status(world.device_id))
    seen = Retained()
    first, second = world.worker(), world.worker()
    anomaly_topic = f"{PREFIX}/devices/{world.device_id}/alarm/anomaly"
    with device_client(mosquitto.port, "plant-ha") as home_assistant:
        home_assistant.on_message = seen.on_message
        home_assistant.subscribe("#", qos=1)
        first.publish_states()
        second.publish_states()
        wait_until(lambda: seen.get(f"{PREFIX}/status") == b"online", 10, "online")
        first.close()  # a clean stop says offline (as its last will would, killed)
        wait_until(lambda: seen.get(f"{PREFIX}/status") == b"offline", 10, "offline from the stopped one")
        second.publish_states()  # the next state pass of the one still running
        wait_until(lambda: seen.get(f"{PREFIX}/status") == b"online", 10, "online again")

        alarm_id = world.open_alarm()  # a slow `opened` is sent after the alarm cleared
        world.clear_alarm(alarm_id)
        second.publish_states()
        wait_until(lambda: seen.get(anomaly_topic) == b"OFF", 10, "OFF")
        second.run_once()  # the opened and the cleared transitions, late
        wait_until(
            lambda: len([m for m in seen.all if m[0].startswith(f"{PREFIX}/alarms/")]) == 2, 10, "both sent"
        )
        second.close()
    assert seen.get(anomaly_topic) == b"OFF"  # no retained ON left behind by the late `opened`
    assert b"ON" not in [m[1] for m in seen.all if m[0] == anomaly_topic]
