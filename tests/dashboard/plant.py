"""A small plant for the layout and accessibility tests, made through the API and MQTT like a real one:
a pump whose fault scores 40x its threshold (an open alarm with its explanation), a healthy fan, a
press that never connected (offline), a camera with person events and thumbnails over six hours, a
model in the registry and a rollout of it."""

import base64
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from PIL import Image

from tests.dashboard.stack import Device, Org, ServerProcess, sign_up, wait_until
from tests.dashboard.why_data import imbalance
from tests.server import registry_kit

HINT = "imbalance: energy at the shaft frequency 15 Hz"


@dataclass
class Plant:
    org: Org
    devices: list[Device]
    alarm_id: int
    rollout_id: int

    def close(self) -> None:
        for device in self.devices:
            device.close()


def _thumbnail() -> str:
    image = Image.new("RGB", (96, 72), (70, 110, 150))
    image.paste((230, 200, 160), (40, 18, 58, 60))  # a person-sized block
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()


def _camera(server: ServerProcess, org: Org) -> Device:
    camera = Device(
        server.url,
        server.mqtt_port,
        "ph-cam-1",
        org.add_device("ph-cam-1", "Hall camera", "camera"),
        "camera",
    )
    camera.status()
    now = datetime.now(UTC)
    for i in range(36):
        camera.telemetry(now - timedelta(minutes=(36 - i) * 10), 0.1, detections_per_hour=float((i * 5) % 7))
    thumbnail = _thumbnail()
    for hours_ago in (5.5, 4.0, 2.2, 0.6):
        start = now - timedelta(hours=hours_ago)
        camera.event("person", ts=start, person_count=2 if hours_ago > 3 else 1, thumbnail_jpeg=thumbnail)
        camera.event("person", active=False, ts=start + timedelta(minutes=25), person_count=0)
    return camera


def build(server: ServerProcess, email: str = "tech@phone.example") -> Plant:
    org = sign_up(server.url, email, "Phone Plant")
    pump = Device(
        server.url, server.mqtt_port, "ph-pump-1", org.add_device("ph-pump-1", "Pump 1, hall A"), "vibration"
    )
    fan = Device(
        server.url, server.mqtt_port, "ph-fan-2", org.add_device("ph-fan-2", "Fan 2, roof"), "vibration"
    )
    org.add_device("ph-press-3", "Press 3 (not yet installed)")
    for device in (pump, fan):
        device.status()
        device.history(hours=6, every_min=10)
    pump.telemetry(datetime.now(UTC), 40.0)
    pump.event("anomaly", score=40.0, threshold=1.0, explanation=imbalance(HINT), severity="critical")
    camera = _camera(server, org)
    alarms = wait_until(
        lambda: org.api.get("/api/v1/alarms", params={"device_id": pump.device_id}).json(), timeout=15
    )

    upload = org.api.post("/api/v1/models", files=registry_kit.files(registry_kit.card(version="2.0.0")))
    upload.raise_for_status()
    rollout = org.api.post(
        "/api/v1/rollouts",
        json={"model_pk": upload.json()["id"], "target": {"device_kind": "vibration"}, "stages": [50, 100]},
    )
    rollout.raise_for_status()
    wait_until(
        lambda: len(org.api.get("/api/v1/events", params={"limit": 50}).json()["items"]) >= 9, timeout=15
    )
    return Plant(org, [pump, fan, camera], alarms[0]["id"], rollout.json()["id"])
