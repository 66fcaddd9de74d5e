"""The scale-out topology on loopback: a private Mosquitto (configured as documented, with the password
and ACL files the API processes keep), a fresh PostgreSQL database, Redis under a key prefix of this
run, and `edgefleet server --role R --host 127.0.0.1 --port P` processes (the command lines of
deploy/compose.yaml and deploy/systemd): api x2, ingest x2, worker x2. Everything stopped by its PID.
"""

import contextlib
import json
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import update

from edgefleet.server import ServerSettings, security
from edgefleet.server.db import make_engine, make_sessionmaker, transaction
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.mosquitto import BROKER_SETTINGS, MosquittoSync
from tests.chaos.processes import ServerProcess
from tests.server import rollout_kit
from tests.support.services import REDIS_URL, MosquittoBroker, PostgresDatabase

PROCESSES = {
    "api-1": "api",
    "api-2": "api",
    "ingest-1": "ingest",
    "ingest-2": "ingest",
    "worker-1": "worker",
    "worker-2": "worker",
}
LEADER_POLL_S = 0.5
ROLLOUT_INTERVAL_S = 0.5
FLEET_DEVICES = [f"fleet-{i:02d}" for i in range(6)]


@dataclass
class RoleProcess(ServerProcess):
    """One `edgefleet server --role ...` process; settings in its environment, as a container gets them."""

    role: str = "all"

    def argv(self) -> list[str]:
        return [*self.command_line(), "--host", "127.0.0.1", "--port", str(self.port)]

    def command_line(self) -> list[str]:
        return [sys.executable, "-m", "edgefleet", "server", "--role", self.role]

    def readyz(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            answer: dict[str, Any] = httpx.get(self.url + "/readyz", timeout=2).json()
            return answer
        return {}


@dataclass
class Cluster:
    workdir: Path
    database: PostgresDatabase = field(default_factory=PostgresDatabase)
    prefix: str = field(default_factory=lambda: f"edgefleet-test-{uuid.uuid4().hex[:10]}")
    device_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    ingest_password: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    metrics_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: dict[str, RoleProcess] = field(default_factory=dict)
    broker: MosquittoBroker | None = None
    bench: rollout_kit.Bench | None = None
    _exit: ExitStack = field(default_factory=ExitStack)

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.workdir / name for name in ("passwd", "acl", "mosquitto.pid")}

    def usernames(self) -> list[str]:
        return [f"edgefleet-ingest-{name}" for name in PROCESSES]

    def start(self) -> None:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.database.create()
            self._exit.callback(self.database.drop)
            self._exit.callback(self._forget_redis)
            self._seed()
            self._start_mosquitto()
            env = self.environment()
            for name, role in PROCESSES.items():
                process = RoleProcess(
                    self.database.url, "", self.workdir / f"{name}.log", env, self.metrics_token, role=role
                )
                process.env = {**env, **self.identity(name)}
                self.processes[name] = process
                process.start()
                self._exit.callback(process.stop)
            for process in self.processes.values():
                process.wait_ready(90)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._exit.close()

    def environment(self) -> dict[str, str]:
        assert self.broker is not None
        files = self.files
        return {
            "EDGEFLEET_DB_URL": self.database.url,
            "EDGEFLEET_BROKER": self.broker.url,
            "EDGEFLEET_REDIS_URL": REDIS_URL,
            "EDGEFLEET_REDIS_PREFIX": self.prefix,
            "EDGEFLEET_RATELIMIT_PREFIX": self.prefix,
            "EDGEFLEET_SECRET_KEY": secrets.token_urlsafe(48),
            "EDGEFLEET_INGEST_PASSWORD": self.ingest_password,
            "EDGEFLEET_INGEST_USERNAMES": json.dumps(self.usernames()),
            "EDGEFLEET_MOSQUITTO_PASSWORD_FILE": str(files["passwd"]),
            "EDGEFLEET_MOSQUITTO_ACL_FILE": str(files["acl"]),
            "EDGEFLEET_MOSQUITTO_PID_FILE": str(files["mosquitto.pid"]),
            "EDGEFLEET_METRICS_TOKEN": self.metrics_token,
            "EDGEFLEET_LEADER_POLL_S": str(LEADER_POLL_S),
            "EDGEFLEET_ROLLOUT_INTERVAL_S": str(ROLLOUT_INTERVAL_S),
            "EDGEFLEET_PUBLIC_URL": "http://127.0.0.1:8000",
            "EDGEFLEET_LOG_LEVEL": "INFO",
        }

    @staticmethod
    def identity(name: str) -> dict[str, str]:
        """Each process is its own MQTT user (Mosquitto makes the username the client id)."""
        return {
            "EDGEFLEET_INGEST_USERNAME": f"edgefleet-ingest-{name}",
            "EDGEFLEET_INGEST_CLIENT_ID": f"edgefleet-ingest-{name}",
        }

    def _seed(self) -> None:
        """An organization with an owner, two registry models, 8 devices to roll out to, and the
        devices of the fleet; every device with the MQTT secret."""
        self.bench = rollout_kit.make_bench(self.database.url, n_devices=8, org_name="Scale")
        secret_hash = security.hash_device_secret(self.device_secret)
        with transaction(self.bench.sessions) as session:
            org = session.get(Organization, self.bench.org_id)
            assert org is not None
            session.execute(update(Device).values(secret_hash=secret_hash))
            session.add_all(
                Device(id=d, org_id=org.id, name=d, kind="vibration", online=False, secret_hash=secret_hash)
                for d in FLEET_DEVICES
            )
        self._exit.callback(self.bench.sessions.kw["bind"].dispose)

    def _start_mosquitto(self) -> None:
        self.broker = MosquittoBroker(workdir=self.workdir / "mosquitto")
        files = self.files
        settings = ServerSettings(
            db_url=self.database.url,
            broker=self.broker.url,
            ingest_password=self.ingest_password,
            ingest_usernames=self.usernames(),
            mosquitto_password_file=str(files["passwd"]),
            mosquitto_acl_file=str(files["acl"]),
        )
        engine = make_engine(self.database.url)
        try:
            MosquittoSync(make_sessionmaker(engine), settings).sync()
        finally:
            engine.dispose()
        self.broker.extra_config = (
            BROKER_SETTINGS + f"password_file {files['passwd']}\nacl_file {files['acl']}\n"
        )
        self.broker.start()
        self._exit.callback(self.broker.stop)
        assert self.broker.process is not None
        files["mosquitto.pid"].write_text(str(self.broker.process.pid), encoding="utf-8")

    def _forget_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=f"*{self.prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()

    # --- helpers of the tests --------------------------------------------------------------------
    def device_client(self, device_id: str, subscribe: str | None = None) -> tuple[mqtt.Client, list[bytes]]:
        """A device's MQTT client (its own credentials), connected and subscribed to `subscribe`, whose
        messages are collected."""
        assert self.broker is not None
        received: list[bytes] = []
        ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(device_id, self.device_secret)
        client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            if subscribe is None:
                ready.set()
            else:
                c.subscribe(subscribe, qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: ready.set()
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        assert ready.wait(10), f"{device_id} did not connect and subscribe"
        return client, received

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.start()
        process.wait_ready(60)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{p.log_tail(2500)}" for name, p in self.processes.items())


def wait_until(
    condition: Any, timeout: float, what: str, step: float = 0.05, explain: Callable[[], str] | None = None
) -> float:
    """Seconds until `condition()` is true; AssertionError (with `explain()`) after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s: {what}\n{explain() if explain else ''}")
