"""The real stack for the dashboard benchmarks: `edgefleet server` in its own process, accounts and
claimed devices made through the API, and a paced MQTT publisher over several device connections.

Run as `python bench/_ui_stack.py '<json options>'` to publish (see `publish`); it prints one JSON
line of results, so the publishers share neither the server's nor the browser driver's GIL.
"""

import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Event, Status, Telemetry, encode, topic_for

PASSWORD = "bench-correct-horse-battery"
log = logging.getLogger("bench.ui_stack")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


@dataclass
class ServerProcess:
    """`python -m edgefleet server --demo` with SQLite and the embedded broker, on free ports."""

    workdir: Path
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, env: dict[str, str] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "server.log").open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "edgefleet", "server", "--demo",
                    "--db", f"sqlite:///{self.workdir / 'server.db'}", "--broker", "embedded",
                    "--port", str(self.http_port), "--mqtt-port", str(self.mqtt_port),
                ],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            )  # fmt: skip
        try:
            wait_for_port(self.http_port, timeout=90)
            wait_for_port(self.mqtt_port, timeout=30)
        except TimeoutError as err:
            self.stop()
            raise RuntimeError(f"the server did not start: {self.logs()[-3000:]}") from err

    def logs(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Org:
    email: str
    token: str
    api: httpx.Client
    base_url: str

    def add_device(self, device_id: str, name: str, kind: str) -> str:
        response = self.api.post("/api/v1/devices", json={"id": device_id, "name": name, "kind": kind})
        response.raise_for_status()
        token: str = response.json()["claim_token"]
        return token

    def add_devices(self, devices: list[tuple[str, str, str]], threads: int = 4) -> dict[str, str]:
        """(id, name, kind) each -> claim token per id; a few requests in flight."""
        with ThreadPoolExecutor(threads) as pool:
            tokens = list(pool.map(lambda d: self.add_device(*d), devices))
        return {d[0]: t for d, t in zip(devices, tokens, strict=True)}

    def claim(self, device_id: str, claim_token: str) -> str:
        response = httpx.post(
            f"{self.base_url}/api/v1/devices/claim",
            json={"device_id": device_id, "claim_token": claim_token},
            timeout=30,
        )
        response.raise_for_status()
        password: str = response.json()["password"]
        return password

    def events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Every event of the organization, newest first."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            response = self.api.get("/api/v1/events", params=params)
            response.raise_for_status()
            page = response.json()
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                return out


def sign_up(base_url: str, email: str, organization: str) -> Org:
    api = httpx.Client(base_url=base_url, timeout=30)
    response = api.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "organization": organization}
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    api.cookies.clear()
    api.headers["Authorization"] = f"Bearer {token}"
    return Org(email, token, api, base_url)


def connect(mqtt_port: int, device_id: str, password: str) -> mqtt.Client:
    """A device's own connection: client id = username = device id, as the embedded ACL wants."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    client.max_inflight_messages_set(100)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    if not connected.wait(15):
        client.loop_stop()
        raise RuntimeError(f"{device_id} could not connect to the broker")
    return client


def seed_history(mqtt_port: int, device_id: str, password: str, kind: str, points: int = 24) -> None:
    """A retained status and `points` telemetry reports over the past hours, so its card has a sparkline."""
    client = connect(mqtt_port, device_id, password)
    now = datetime.now(UTC)
    status = Status(
        device_id=device_id, seq=0, ts=now, state="online", kind=kind,  # type: ignore[arg-type]
        mode="running", firmware_version="1.2.0", model_id="demo-ae", model_version="1.0.0",
    )  # fmt: skip
    infos = [client.publish(topic_for(device_id, Channel.STATUS), encode(status), qos=1, retain=True)]
    for i in range(points):
        score = 0.45 + 0.1 * ((i * 7919) % 13) / 13
        telemetry = Telemetry(
            device_id=device_id, seq=i + 1, ts=now - timedelta(minutes=(points - i) * 10), mode="running",
            uptime_s=100.0 + i, interval_s=600.0, windows=90, anomaly_rate=0.02, score_p50=score * 0.6,
            score_p95=score, score_max=score * 1.3, threshold=1.0, inference_us=850.0, drift=0.3,
            detections_per_hour=float(i % 7) if kind == "camera" else None,
        )  # fmt: skip
        infos.append(client.publish(topic_for(device_id, Channel.TELEMETRY), encode(telemetry), qos=1))
    for info in infos:
        info.wait_for_publish(15)
    client.disconnect()
    client.loop_stop()


def _event(device_id: str, kind: str, seq: int) -> bytes:
    if kind == "camera":
        fields: dict[str, Any] = {"kind": "person", "score": 0.91, "person_count": 1}
    else:
        fields = {"kind": "anomaly", "score": 2.4, "threshold": 1.0}
    return encode(
        Event(
            device_id=device_id, seq=seq, ts=datetime.now(UTC), active=True,
            model_id="demo-ae", model_version="1.0.0", features={"rms": 1.7}, **fields,
        )
    )  # fmt: skip


def publish(options: dict[str, Any]) -> dict[str, Any]:
    """Publish events at `rate` per second for `seconds`, round-robin over `devices`
    ([id, password, kind] each, one connection per device), QoS 1. Records the wall-clock
    milliseconds (time.time()) just before each publish, per (device, seq)."""
    port: int = options["mqtt_port"]
    devices: list[list[str]] = options["devices"]
    rate: float = options["rate"]
    count = int(rate * options["seconds"])
    clients = [connect(port, d, p) for d, p, _ in devices]
    acked = 0
    lock = threading.Lock()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1

    for client in clients:
        client.on_publish = on_publish
    seqs = [itertools.count(1) for _ in devices]
    sent: list[tuple[str, int, float]] = []
    late_max = 0.0
    started = time.perf_counter()
    for n in range(count):
        ahead = n / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(ahead)
        else:
            late_max = max(late_max, -ahead)
        i = n % len(devices)
        device_id, _, kind = devices[i]
        seq = next(seqs[i])
        payload = _event(device_id, kind, seq)
        sent.append((device_id, seq, time.time() * 1000))
        clients[i].publish(topic_for(device_id, Channel.EVENT), payload, qos=1)
    publish_s = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while acked < count and time.monotonic() < deadline:
        time.sleep(0.02)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return {
        "sent": sent,
        "acked": acked,
        "publish_s": publish_s,
        "rate_per_s": (count - 1) / publish_s if count > 1 and publish_s else 0.0,
        "late_max_ms": late_max * 1000,
    }


if __name__ == "__main__":
    print(json.dumps(publish(json.loads(sys.argv[1]))))
