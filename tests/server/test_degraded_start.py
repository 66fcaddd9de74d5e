"""A real server process starts and serves its API and dashboard while its broker or its database is
down, says so on /healthz (200, `degraded`) and /readyz (503 with the reason), and gets healthy by
itself once they come back. Loopback only; every process is stopped by its PID."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, encode, topic_for
from tests.server import seed
from tests.server.conftest import INGEST_PASSWORD, PASSWORD, SECRET
from tests.server.tcp_proxy import TcpProxy
from tests.support.services import MosquittoBroker, PostgresDatabase, free_port

START_S = 60.0  # importing the dashboard takes a few seconds on a busy 2-core machine


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[str, str], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(db_url: str, broker: str) -> ServerProcess:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        env = {
            **os.environ,
            "EDGEFLEET_SECRET_KEY": SECRET,
            "EDGEFLEET_INGEST_PASSWORD": INGEST_PASSWORD,
            "EDGEFLEET_ALLOW_SIGNUP": "true",
            "EDGEFLEET_LOG_LEVEL": "INFO",
            "COLUMNS": "200",
        }
        command = [sys.executable, "-c", "from edgefleet.cli.main import main; main()", "server"]
        command += ["--db", db_url, "--broker", broker, "--port", str(port)]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            assert server.alive(), f"the server exited ({process.returncode}): {log.read_text()[-3000:]}"
            try:
                if server.get("/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not serve within {START_S} s: {log.read_text()[-3000:]}")

    yield start
    for server in started:
        server.stop()


def _wait_ready(server: ServerProcess, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.get("/readyz").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout} s: {server.get('/readyz').json()}")


def _owner_headers(server: ServerProcess) -> dict[str, str]:
    body = {"email": "ann@example.com", "password": PASSWORD, "organization": "Plant"}
    response = server.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.needs("mosquitto")
def test_starts_without_its_broker_and_connects_when_it_comes(
    tmp_path: Path, start_server: Callable[[str, str], ServerProcess]
) -> None:
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")  # its port stays closed for now
    server = start_server(f"sqlite:///{tmp_path / 'server.db'}", broker.url)
    try:
        assert server.get("/healthz").json() == {"status": "degraded"}
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] == {"status": "ok"}
        assert ready.json()["ingest"]["status"] == "connecting"
        headers = _owner_headers(server)  # the API works
        assert server.post("/api/v1/devices", json={"id": "press-1"}, headers=headers).status_code == 201
        assert server.get("/login").status_code == 200  # so does the dashboard
        time.sleep(2.0)
        assert server.alive()

        broker.start()
        healthy_after = _wait_ready(server, timeout=15.0)
        assert healthy_after < 10.0  # paho's reconnect backoff is 1 s doubling to 5 s
        assert server.get("/healthz").json() == {"status": "ok"}
        assert server.get("/readyz").json()["ingest"]["status"] == "ok"

        _publish(broker, topic_for("press-1", Channel.EVENT), encode(seed.anomaly("press-1", seq=1)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            items = server.get("/api/v1/events", headers=headers).json()["items"]
            if items:
                break
            time.sleep(0.1)
        assert [e["seq"] for e in items] == [1]  # ingest works over the late connection
    finally:
        server.stop()
        broker.stop()
    assert server.process.returncode != 3
    log = server.log.read_text()
    assert log.count("Traceback") == 0, log[-3000:]


@pytest.mark.needs("postgres", "mosquitto")
def test_starts_without_its_database_and_migrates_when_it_comes(
    tmp_path: Path, mosquitto: MosquittoBroker, start_server: Callable[[str, str], ServerProcess]
) -> None:
    """PostgreSQL is shared: this test's server reaches it through a proxy of its own, closed first."""
    database = PostgresDatabase()
    database.create()
    proxy = TcpProxy(upstream_port=5432)
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{database.name}"
        server = start_server(url, mosquitto.url)
        assert server.get("/healthz").json() == {"status": "degraded"}
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"]["status"] == "starting"
        assert ready.json()["ingest"]["status"] == "waiting_for_database"
        body = {"email": "ann@example.com", "password": PASSWORD}
        login = server.post("/api/v1/auth/login", json=body)
        assert login.status_code == 503 and login.headers["Retry-After"]  # not a 500
        assert server.get("/login").status_code == 200  # the dashboard's pages are served
        time.sleep(3.0)
        assert server.alive()

        proxy.start()
        healthy_after = _wait_ready(server, timeout=20.0)
        assert healthy_after < 12.0  # start-up retries back off up to 10 s
        headers = _owner_headers(server)  # migrated: the API works

        proxy.stop()  # down again while running: degraded, API 503, back by itself
        time.sleep(1.0)
        assert server.get("/healthz").json() == {"status": "degraded"}
        assert server.get("/readyz").json()["database"]["status"] == "unavailable"
        assert server.get("/api/v1/auth/me", headers=headers).status_code == 503
        proxy.start()
        assert _wait_ready(server, timeout=10.0) < 5.0
        server.stop()
    finally:
        proxy.stop()
        database.drop()
    assert server.process.returncode != 3
    log = server.log.read_text()
    assert log.count("Traceback") == 0, log[-3000:]
    own = [line for line in log.splitlines() if "uvicorn.access" not in line]
    assert len(own) < 40, "\n".join(own)  # compact: no traceback per retry
