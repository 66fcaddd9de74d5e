"""Ingest through the embedded broker under load: a flat-out QoS 1 burst is stored exactly once."""

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from edgefleet.contracts import Channel, topic_for
from edgefleet.server import create_app, security
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Device, EventRow
from edgefleet.server.loadgen import event_template
from tests.server.conftest import make_settings, sign_up
from tests.server.mqtt_helpers import wait_until
from tests.support.services import free_port

DEVICES, PER_DEVICE = 5, 1000
SECRET = "device-secret-for-tests"


def _publish_flat_out(port: int, device_id: str, errors: list[str]) -> None:
    """One device publishing PER_DEVICE events at QoS 1 as fast as its in-flight window allows."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(device_id, SECRET)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    try:
        client.connect("127.0.0.1", port)
        client.loop_start()
        template = event_template(device_id)
        infos = [
            client.publish(topic_for(device_id, Channel.EVENT), template % seq, qos=1)
            for seq in range(1, PER_DEVICE + 1)
        ]
        for info in infos:
            info.wait_for_publish(60)
        if not all(info.is_published() for info in infos):
            errors.append(f"{device_id}: not every PUBACK arrived")
    except Exception as err:  # reported by the test thread
        errors.append(f"{device_id}: {err!r}")
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_flat_out_burst_through_the_embedded_broker_is_stored_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, broker="embedded", embedded_port=port, ingest_client_id="burst")
    app = create_app(settings)
    with TestClient(app) as client:
        owner = sign_up(client, "ops@example.com")
        context: ServerContext = app.state.edgefleet
        secret_hash = security.hash_device_secret(SECRET, iterations=1000)
        device_ids = [f"burst-{n}" for n in range(DEVICES)]
        with context.sessions() as session, session.begin():
            session.add_all(
                Device(
                    id=d, org_id=owner.org_id, name=d, kind="camera", online=False, secret_hash=secret_hash
                )
                for d in device_ids
            )
        errors: list[str] = []
        publishers = [threading.Thread(target=_publish_flat_out, args=(port, d, errors)) for d in device_ids]
        for thread in publishers:
            thread.start()
        for thread in publishers:
            thread.join(120)
        assert errors == []

        def stored() -> tuple[int, int]:
            pairs = select(EventRow.device_id, EventRow.seq).where(EventRow.org_id == owner.org_id)
            with context.sessions() as session:
                rows = session.scalar(select(func.count()).select_from(pairs.subquery()))
                distinct = session.scalar(select(func.count()).select_from(pairs.distinct().subquery()))
            return int(rows or 0), int(distinct or 0)

        wait_until(lambda: stored()[0] >= DEVICES * PER_DEVICE, 60, "every event stored")
        with context.sessions() as session:
            pairs = {(r.device_id, r.seq) for r in session.execute(select(EventRow.device_id, EventRow.seq))}
        assert stored() == (DEVICES * PER_DEVICE, DEVICES * PER_DEVICE)
        assert pairs == {(d, seq) for d in device_ids for seq in range(1, PER_DEVICE + 1)}
        metrics = client.get("/metrics", headers=owner.headers).text
        assert f'edgefleet_ingest_stored_total{{channel="event"}} {DEVICES * PER_DEVICE}.0' in metrics
