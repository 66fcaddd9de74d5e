"""The real stack for browser tests: `edgefleet server` (dashboard + embedded broker) in its own
process, accounts made through the API, devices claimed and publishing over MQTT with paho."""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Event, Status, Telemetry, encode, topic_for
from tests.support.services import free_port, wait_for_port

PASSWORD = "correct-horse-battery"


@dataclass
class ServerProcess:
    workdir: Path
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "EDGEFLEET_ALARM_CHECK_INTERVAL_S": "0.5", "EDGEFLEET_INGEST_FLUSH_MS": "1"}
        self.log = (self.workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "edgefleet", "server", "--demo",
                "--db", f"sqlite:///{self.workdir / 'server.db'}", "--broker", "embedded",
                "--port", str(self.http_port), "--mqtt-port", str(self.mqtt_port),
            ],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            wait_for_port(self.http_port, timeout=60)
            wait_for_port(self.mqtt_port, timeout=30)
        except TimeoutError as err:
            self.stop()
            raise RuntimeError(f"server did not start: {self.logs()[-3000:]}") from err

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

    def add_device(self, device_id: str, name: str, kind: str = "vibration") -> str:
        response = self.api.post("/api/v1/devices", json={"id": device_id, "name": name, "kind": kind})
        response.raise_for_status()
        token: str = response.json()["claim_token"]
        return token


def sign_up(base_url: str, email: str, organization: str) -> Org:
    api = httpx.Client(base_url=base_url, timeout=30)
    response = api.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "organization": organization}
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    api.cookies.clear()
    api.headers["Authorization"] = f"Bearer {token}"
    return Org(email, token, api)


class Device:
    """A claimed device publishing real contract messages over its own MQTT connection."""

    def __init__(self, base_url: str, mqtt_port: int, device_id: str, claim_token: str, kind: str) -> None:
        response = httpx.post(
            f"{base_url}/api/v1/devices/claim", json={"device_id": device_id, "claim_token": claim_token}
        )
        response.raise_for_status()
        self.device_id, self.kind = device_id, kind
        self.seq = itertools.count(1)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        self.client.username_pw_set(device_id, response.json()["password"])
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        self.client.connect("127.0.0.1", mqtt_port)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError(f"{device_id} could not connect to the broker")

    def _send(self, channel: Channel, message: Event | Telemetry | Status, retain: bool = False) -> None:
        info = self.client.publish(topic_for(self.device_id, channel), encode(message), qos=1, retain=retain)
        info.wait_for_publish(10)

    def status(self, mode: Literal["commissioning", "running", "degraded"] = "running") -> None:
        self._send(
            Channel.STATUS,
            Status(
                device_id=self.device_id, seq=0, ts=datetime.now(UTC), state="online",
                kind=self.kind,  # type: ignore[arg-type]
                mode=mode, firmware_version="1.2.0", model_id="demo-ae", model_version="1.0.0",
            ),
            retain=True,
        )  # fmt: skip

    def telemetry(self, ts: datetime, score: float, threshold: float = 1.0, **extra: Any) -> None:
        self._send(
            Channel.TELEMETRY,
            Telemetry(
                device_id=self.device_id, seq=next(self.seq), ts=ts, mode="running", uptime_s=100.0,
                interval_s=60.0, windows=90, anomaly_rate=0.02 if score < threshold else 0.6,
                score_p50=score * 0.6, score_p95=score, score_max=score * 1.3, threshold=threshold,
                inference_us=850.0, outbox_depth=0, drift=0.3, **extra,
            ),
        )  # fmt: skip

    def event(
        self, kind: str = "anomaly", active: bool = True, ts: datetime | None = None, **fields: Any
    ) -> int:
        """Publish an event (at `ts`, device time; now by default) and return its seq."""
        seq = next(self.seq)
        defaults: dict[str, Any] = (
            {"score": 0.92, "person_count": 1} if kind == "person" else {"score": 2.4, "threshold": 1.0}
        )
        self._send(
            Channel.EVENT,
            Event(
                device_id=self.device_id, seq=seq, ts=ts or datetime.now(UTC),
                kind=kind, active=active, **{**defaults, **fields},  # type: ignore[arg-type]
            ),
        )  # fmt: skip
        return seq

    def history(self, hours: float = 6, every_min: float = 10, fault_after: float | None = None) -> None:
        """Telemetry over the past `hours`; the score rises past the threshold after `fault_after` h."""
        now = datetime.now(UTC)
        steps = int(hours * 60 / every_min)
        for i in range(steps):
            ts = now - timedelta(minutes=(steps - i) * every_min)
            elapsed_h = i * every_min / 60
            base = 0.45 + 0.1 * ((i * 7919) % 13) / 13
            score = base * (3.0 if fault_after is not None and elapsed_h >= fault_after else 1.0)
            self.telemetry(ts, score)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_server(workdir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(check: Any, timeout: float = 10.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")
