"""A provisioned camera node reports over a real Mosquitto and obeys `reset_network` sent over MQTT."""

import threading
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Command, encode, topic_for, utc_now
from edgefleet.edge.camera import CameraConfig, CameraNode, DetectionConfig, ListSource, PersonModel
from edgefleet.edge.camera.runner import CameraRunner, RunnerOptions
from edgefleet.edge.config import MqttConfig
from edgefleet.edge.provisioning import DeviceCredentials, NetworkSettings, SettingsStore
from tests.edge.mqtt_helpers import Collector
from tests.support.services import MosquittoBroker

pytestmark = pytest.mark.needs("shared", "mosquitto")


def provisioned_node(state: Path, broker: MosquittoBroker, model: PersonModel) -> CameraNode:
    SettingsStore(state).save(
        NetworkSettings("Hall B", "passphrase1", "WPA", False, "http://127.0.0.1:9"),
        DeviceCredentials("cam-1", "cam-1", "unused-by-anonymous-broker", broker.url),
    )
    return CameraNode(CameraConfig(state_dir=state, detection=DetectionConfig(smoothing=1.0)), model)


def test_events_flow_and_reset_over_mqtt_returns_to_provisioning(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    person_model: PersonModel,
    person_frame: np.ndarray,
    no_person_frame: np.ndarray,
) -> None:
    node = provisioned_node(tmp_path / "state", mosquitto, person_model)
    collector = Collector(mosquitto.url, ack=True)  # a fake ingest: acknowledges what it receives
    scene = [no_person_frame] * 3 + [person_frame] * 5 + [no_person_frame] * 5
    runner = CameraRunner(
        node, ListSource(scene, fps=20, repeat=200), RunnerOptions(telemetry_interval_s=0.3)
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, kwargs={"stop": stop})
    thread.start()
    try:
        assert collector.wait_for(lambda: sum(not e.active for e in collector.events()) >= 2, timeout=30)
        assert collector.wait_for(lambda: bool(collector.telemetry()), timeout=10)
        online = [s for s in collector.statuses() if s.state == "online"]
        assert online and online[0].kind == "camera" and online[0].model_id == "person-detect"
        events = collector.events()
        assert all(e.kind == "person" and e.device_id == "cam-1" for e in events)
        assert [e.active for e in events[:4]] == [True, False, True, False]  # one event per visit
        assert [e.seq for e in events] == sorted({e.seq for e in events})

        sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="server")
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        command = Command(device_id="cam-1", ts=utc_now(), command_id="r1", command="reset_network")
        sender.publish(topic_for("cam-1", Channel.CMD), encode(command), qos=1).wait_for_publish(5)
        sender.loop_stop()
        assert collector.wait_for(lambda: node.mode == "provisioning", timeout=10)
        assert not node.store.path.exists()
        assert collector.wait_for(lambda: any(s.state == "offline" for s in collector.statuses()), timeout=10)
    finally:
        stop.set()
        thread.join(timeout=15)
        collector.close()
    assert not thread.is_alive()
    assert collector.invalid == []


def test_local_reset_button(
    tmp_path: Path, mosquitto: MosquittoBroker, person_model: PersonModel, no_person_frame: np.ndarray
) -> None:
    node = provisioned_node(tmp_path / "state", mosquitto, person_model)
    runner = CameraRunner(
        node, ListSource([no_person_frame], fps=50, repeat=20), RunnerOptions(realtime=False)
    )
    runner.press_reset_button()
    assert runner.run() == 20
    assert node.mode == "provisioning" and runner.link is None


def test_camera_messages_stay_in_the_outbox_until_the_server_acknowledges_them(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    person_model: PersonModel,
    person_frame: np.ndarray,
    no_person_frame: np.ndarray,
) -> None:
    node = provisioned_node(tmp_path / "state", mosquitto, person_model)
    ingest = Collector(mosquitto.url, client_id="fake-ingest", ack=True)
    ingest.acking.clear()  # receives, does not acknowledge yet
    scene = [no_person_frame] * 3 + [person_frame] * 5 + [no_person_frame] * 5
    link = MqttConfig(ack_timeout_s=1.0, ack_timeout_max_s=2.0, backoff_min_s=0.05, backoff_max_s=0.5)
    options = RunnerOptions(telemetry_interval_s=0.3, mqtt=link)
    runner = CameraRunner(node, ListSource(scene, fps=20, repeat=200), options)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, kwargs={"stop": stop})
    thread.start()
    try:
        assert ingest.wait_for(lambda: len(ingest.events()) >= 2, timeout=30)
        assert ingest.wait_for(lambda: runner.link is not None and runner.link.stats.resent > 0, 10)
        assert node.outbox is not None
        held = {m.seq for m in node.outbox.pending(limit=1000)}
        assert {e.seq for e in ingest.events()} <= held  # delivered, kept: nobody acknowledged
        ingest.acking.set()
        stop.set()
        thread.join(timeout=20)  # the runner drains its outbox before it ends
    finally:
        stop.set()
        thread.join(timeout=20)
        ingest.close()
    assert node.outbox is not None and node.outbox.depth() == 0
    assert held <= ingest.seqs("cam-1") and ingest.duplicates("cam-1") > 0
    assert ingest.invalid == []
