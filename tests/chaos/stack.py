"""The stack of one chaos run: options, what a fault is, and the processes it starts (a private
Mosquitto configured as documented: `BROKER_SETTINGS` and the password and ACL files the server
keeps; or the server's embedded broker), a fresh PostgreSQL database or a SQLite file, the server,
the database monitor and the fleet), all stopped by their PID."""

import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from edgefleet.server import ServerSettings, security
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.mosquitto import BROKER_SETTINGS, MosquittoSync
from tests.chaos.processes import FleetProcess, ServerProcess, StoreMonitor, tmpfs
from tests.server.tcp_proxy import TcpProxy
from tests.support.services import PG_ADMIN_DSN, MosquittoBroker, PostgresDatabase

DAY_S = 86400.0
CLOCK_BEHIND_S = 400 * DAY_S
PG_PORT = 5432


@dataclass(frozen=True)
class ChaosOptions:
    devices: int = 12
    rate: float = 120.0
    """Messages per second of the whole fleet (telemetry, plus the events of toggling faults)."""
    warmup_s: float = 3.0
    fault_s: float = 6.0
    """How long the fault lasts."""
    after_s: float = 3.0
    """How long the fleet keeps producing after the fault ended."""
    drain_timeout_s: float = 45.0
    # the devices' MQTT settings (MqttConfig): short, so that a run takes seconds, not minutes
    backoff_max_s: float = 2.0
    ack_timeout_s: float = 2.0
    ack_timeout_max_s: float = 8.0
    delivery: Literal["end_to_end", "broker"] = "end_to_end"
    """`broker`: a device frees a message on the broker's PUBACK (as before issue 17): the baseline."""
    # the wrong-clock run: alarm timing and retention passes close together
    alarm_clear_after_s: float = 6.0
    retention_interval_s: float = 1.0


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    db: Literal["postgres", "sqlite"]
    broker: Literal["mosquitto", "embedded"]
    inject: Callable[["Stack"], None]
    restore: Callable[["Stack"], None]
    recovery_bound_s: float | None
    """`recovery_s` must not exceed it (None: a fault without an end)."""
    drain_bound_s: float | None
    hold: Callable[["Stack"], None] | None = None
    """Instead of holding the fault for `fault_s`."""
    shared: bool = True
    proxy: bool = False
    disk: bool = False
    wrong_clock: bool = False

    @property
    def services(self) -> tuple[str, ...]:
        return (("postgres",) if self.db == "postgres" else ()) + (
            ("mosquitto",) if self.broker == "mosquitto" else ()
        )


class Stack:
    """Broker, database, server, monitor and fleet of one run; everything stopped by its PID on exit."""

    def __init__(self, fault: Fault, options: ChaosOptions, workdir: Path) -> None:
        self.fault = fault
        self.options = options
        self.workdir = workdir
        self.device_secret = secrets.token_urlsafe(16)
        self.ingest_password = secrets.token_urlsafe(32)
        self.device_ids = [f"chaos-{i + 1:02d}" for i in range(options.devices)]
        self.broker: MosquittoBroker | None = None
        self.database: PostgresDatabase | None = None
        self.proxy: TcpProxy | None = None
        self.disk: Path | None = None
        self.filler: Path | None = None
        self.db_url = ""
        self._exit = ExitStack()

    def __enter__(self) -> "Stack":
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        fault, workdir = self.fault, self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        outbox_dir = workdir / "outbox"
        if fault.disk:
            self.disk = self._exit.enter_context(tmpfs(workdir / "disk", "96m"))
            outbox_dir = self.disk / "outbox"
        server_db = self.db_url = f"sqlite:///{workdir / 'server.db'}"
        if fault.db == "postgres":
            self.database = PostgresDatabase()
            self.database.create()
            self._exit.callback(self.database.drop)
            server_db = self.db_url = self.database.url
        self._seed()
        if fault.broker == "mosquitto":
            self._exit.callback(self._stop_broker)
            self._start_mosquitto()
        if fault.proxy:
            self.proxy = TcpProxy(upstream_port=PG_PORT)
            self.proxy.start()
            self._exit.callback(self.proxy.stop)
            server_db = self.db_url.replace(f"127.0.0.1:{PG_PORT}/", f"127.0.0.1:{self.proxy.port}/")
        metrics_token = secrets.token_urlsafe(24)
        self.server = ServerProcess(
            server_db,
            self.broker.url if self.broker else "embedded",
            workdir / "server.log",
            {**self._server_env(), "EDGEFLEET_METRICS_TOKEN": metrics_token},
            metrics_token=metrics_token,
        )
        self.server.start()
        self._exit.callback(self.server.stop)
        self.server.wait_ready()
        self.monitor = StoreMonitor(self.db_url)
        self.monitor.start()
        self._exit.callback(self.monitor.close)
        self._exit.callback(self.monitor.stop)
        self.fleet = FleetProcess(self._fleet_config(outbox_dir), workdir)
        self._exit.callback(self.fleet.stop)
        self.fleet.start()

    def _start_mosquitto(self) -> None:
        """Mosquitto as documented: `BROKER_SETTINGS`, the password and ACL files the server keeps in
        step with its device table (written here first: they must exist before Mosquitto starts)."""
        self.broker = MosquittoBroker(workdir=self.workdir / "mosquitto")
        files = self.mosquitto_files
        settings = ServerSettings(
            db_url=self.db_url,
            broker=self.broker.url,
            ingest_password=self.ingest_password,
            mosquitto_password_file=str(files["passwd"]),
            mosquitto_acl_file=str(files["acl"]),
        )
        engine = make_engine(self.db_url)
        try:
            MosquittoSync(make_sessionmaker(engine), settings).sync()
        finally:
            engine.dispose()
        files_config = f"password_file {files['passwd']}\nacl_file {files['acl']}\n"
        self.broker.extra_config = BROKER_SETTINGS + files_config
        self.start_broker()

    @property
    def mosquitto_files(self) -> dict[str, Path]:
        return {name: self.workdir / name for name in ("passwd", "acl", "mosquitto.pid")}

    def start_broker(self) -> None:
        """(Re)start Mosquitto on its port; its pid file tells the server whom to send SIGHUP."""
        assert self.broker is not None
        self.broker.start()
        assert self.broker.process is not None
        self.mosquitto_files["mosquitto.pid"].write_text(str(self.broker.process.pid), encoding="utf-8")

    def _stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    def _seed(self) -> None:
        """The organization and the devices, with their MQTT secret, straight into the database."""
        engine = make_engine(self.db_url)
        try:
            upgrade(engine)
            secret_hash = security.hash_device_secret(self.device_secret)
            with transaction(make_sessionmaker(engine)) as session:
                org = Organization(name="chaos")
                session.add(org)
                session.flush()
                session.add_all(
                    Device(
                        id=d, org_id=org.id, name=d, kind="vibration", online=False, secret_hash=secret_hash
                    )
                    for d in self.device_ids
                )
        finally:
            engine.dispose()

    def _server_env(self) -> dict[str, str]:
        env = {
            "EDGEFLEET_SECRET_KEY": secrets.token_urlsafe(48),
            "EDGEFLEET_INGEST_PASSWORD": self.ingest_password,
            "EDGEFLEET_INGEST_SHARED": "true" if self.fault.shared else "false",
            "EDGEFLEET_LOG_LEVEL": "INFO",
            "COLUMNS": "200",
        }
        if self.broker is not None:
            files = self.mosquitto_files
            env["EDGEFLEET_MOSQUITTO_PASSWORD_FILE"] = str(files["passwd"])
            env["EDGEFLEET_MOSQUITTO_ACL_FILE"] = str(files["acl"])
            env["EDGEFLEET_MOSQUITTO_PID_FILE"] = str(files["mosquitto.pid"])
        if self.fault.wrong_clock:
            env["EDGEFLEET_ALARM_CLEAR_AFTER_S"] = str(self.options.alarm_clear_after_s)
            env["EDGEFLEET_ALARM_CHECK_INTERVAL_S"] = "0.5"
            env["EDGEFLEET_RETENTION_INTERVAL_S"] = str(self.options.retention_interval_s)
        return env

    def _fleet_config(self, outbox_dir: Path) -> dict[str, Any]:
        options = self.options
        interval = options.devices / options.rate  # sensor seconds between a device's telemetry
        devices: list[dict[str, Any]] = []
        for i, device_id in enumerate(self.device_ids):
            # an imbalance on for 4 s, off for 4 s (from 1-3 s on): rule events raised and cleared
            faults = ",".join(
                f"imbalance@{t}x2" if k % 2 == 0 else f"normal@{t}"
                for k, t in enumerate(range(1 + i % 3, 3600, 4))
            )
            devices.append({"id": device_id, "password": self.device_secret, "faults": faults})
        if self.fault.wrong_clock:  # one alarm raised and cleared, on a clock 400 days behind
            devices[0].update(clock_offset_s=-CLOCK_BEHIND_S, faults="imbalance@2x2,normal@5")
        broker = self.broker.url if self.broker else f"mqtt://127.0.0.1:{self.server.mqtt_port}"
        return {
            "broker": broker,
            "devices": devices,
            "outbox_dir": str(outbox_dir),
            "record": str(self.workdir / "record.txt"),
            "telemetry_interval_s": interval,
            "tick_s": min(0.1, interval / 2),
            "stagger_s": 0.05 if self.fault.broker == "embedded" else 0.0,
            "mqtt": {
                "backoff_min_s": 0.1,
                "backoff_max_s": options.backoff_max_s,
                "keepalive_s": 5,
                "ack_timeout_s": options.ack_timeout_s,
                "ack_timeout_max_s": options.ack_timeout_max_s,
                "delivery": options.delivery,
            },
            "log_level": "INFO",
        }

    def admin_sql(self, *statements: str) -> None:
        """Run statements on the test's own database, from the admin connection."""
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def logs(self) -> str:
        server = self.server.log_tail(4000) if hasattr(self, "server") else ""
        fleet = self.fleet.log_tail(2000) if hasattr(self, "fleet") else ""
        return f"--- server log (tail)\n{server}\n--- fleet log (tail)\n{fleet}"
