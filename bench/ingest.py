"""Server ingest: devices -> MQTT -> ingest -> database, publish -> WebSocket latency, vs the raw broker."""

import json
import logging
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from _brokers import MOSQUITTO_SETTINGS, mosquitto_version, private_mosquitto, standalone_embedded
from _ws_latency import start_receiver

PACKAGES = ("fastapi", "sqlalchemy", "paho-mqtt", "psycopg", "uvicorn", "amqtt")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
LATENCY_SEQ = 10**9  # sequence ranges of the phases, so they never collide
RAW_SEQ = 2 * 10**9
log = logging.getLogger("bench.ingest")
logging.getLogger("alembic").setLevel(logging.WARNING)


@dataclass
class Fleet:
    """Where and as whom the publishers connect."""

    url: str
    devices: list[str]
    password: str | None = None  # embedded broker: every device has this secret
    mqtt5: bool = True
    ingest_user: tuple[str, str] | None = None

    @property
    def per_device_clients(self) -> bool:
        return self.password is not None  # the embedded ACL wants client id == device id


def _loopback_only(url: str, what: str) -> None:
    host = urlsplit(url).hostname
    if host is not None and host not in LOOPBACK:
        raise ValueError(f"{what} must be on this machine (loopback), not {host!r}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _publishers(  # noqa: PLR0917 - private helper
    fleet: Fleet,
    total: int,
    processes: int,
    rate: float,
    tag: str,
    first_seq: int = 1,
    raw: bool = False,
    raw_baseline: bool = False,
    extra: dict[str, Any] | None = None,
) -> list[subprocess.Popen[str]]:
    """Publisher processes; the raw-broker baseline uses plain paho, the rest `loadgen`'s lean engine."""
    procs = []
    for p in range(processes):
        mine = fleet.devices[p::processes]
        options: dict[str, Any] = {
            "broker": fleet.url,
            "devices": mine,
            "count": total // processes,
            "rate": rate / processes,
            "raw": raw,
            "client_id": mine[0] if fleet.per_device_clients else f"bench-pub-{tag}-{p}",
            "first_seq": first_seq,
            "mqtt5": fleet.mqtt5,
            "inflight": 1000 if fleet.mqtt5 else 100,
            "engine": "paho" if raw_baseline else "lean",
            **(extra or {}),
        }
        if fleet.password:
            options.update(username=mine[0], password=fleet.password)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "edgefleet.server.loadgen", json.dumps(options)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _wait(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"publisher failed with exit code {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def raw_broker(fleet: Fleet, count: int, processes: int) -> float:
    """A plain paho subscriber receiving what plain paho publishers send, QoS 1: messages per second."""
    parts = urlsplit(fleet.url)
    received = 0
    first = last = 0.0
    lock = threading.Lock()

    def on_message(*_args: Any) -> None:
        nonlocal received, first, last
        with lock:
            now = time.perf_counter()
            first = first or now
            last = now
            received += 1

    ready = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-raw-{secrets.token_hex(3)}",
        protocol=mqtt.MQTTv5 if fleet.mqtt5 else mqtt.MQTTv311,
    )
    if fleet.ingest_user:
        client.username_pw_set(*fleet.ingest_user)
    # on the embedded broker only device topics are allowed: publish events, subscribe as ingest
    topic_filter = "bench/raw/#" if fleet.ingest_user is None else "ef/v1/+/event"

    def on_connect(c: mqtt.Client, *_args: Any) -> None:
        c.subscribe(topic_filter, qos=1)
        ready.set()

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    ready.wait(10)
    time.sleep(0.3)
    total = count - count % processes
    raw_topics = fleet.ingest_user is None
    _wait(_publishers(fleet, total, processes, 0.0, "raw", RAW_SEQ, raw=raw_topics, raw_baseline=True))
    deadline = time.monotonic() + 30
    while received < total and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return received / (last - first) if last > first else 0.0


def _load_1m() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run(options: Mapping[str, str]) -> dict[str, Any]:
    """`--broker embedded` (amqtt in the server), `mosquitto` (a private Mosquitto configured as
    docs/server.md says) or `mqtt://host:port` (a broker of yours, on this machine)."""
    broker = options.get("broker", "mosquitto")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgefleet-bench-")))
        url = broker
        if broker == "mosquitto":
            url = stack.enter_context(private_mosquitto(tmp / "mosquitto"))
        elif broker != "embedded":
            _loopback_only(broker, "broker")
        figures = _run(options, broker, url, tmp)
    if broker == "mosquitto":
        figures["broker"] = f"mosquitto {mosquitto_version()} (private: {', '.join(MOSQUITTO_SETTINGS)})"
    return figures


def _run(options: Mapping[str, str], broker: str, url: str, tmp: Path) -> dict[str, Any]:
    import uvicorn
    from sqlalchemy import delete, func, select

    from edgefleet.server import ServerSettings, create_app, security
    from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
    from edgefleet.server.db.models import Device, EventRow, Organization, User

    db = options.get("db", f"sqlite:///{tmp / 'bench.db'}")
    embedded = broker == "embedded"
    _loopback_only(db, "database")
    duration = min(float(options.get("duration_s", "60")), 600.0)
    target_rate = float(options.get("target_rate", "1000" if embedded else "5000"))
    mode = options.get("mode", "flat")
    if mode not in ("flat", "paced"):
        raise ValueError("--mode is `flat` (publish as fast as accepted for duration_s) or `paced`")
    processes = max(1, min(int(options.get("publishers", "2")), 8))
    n_devices = processes if embedded else max(processes, min(int(options.get("devices", "100")), 10_000))
    latency_rate = float(options.get("latency_rate", "1000"))
    latency_s = min(float(options.get("latency_s", "10")), 120.0)
    run_id = secrets.token_hex(3)
    load_start = _load_1m()

    engine = make_engine(db)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    device_secret = secrets.token_urlsafe(16)
    devices = [f"bench-{run_id}-{i}" for i in range(n_devices)]
    with transaction(sessions) as session:
        org = Organization(name=f"bench-{run_id}")
        session.add(org)
        session.flush()
        org_id = org.id
        secret_hash = security.hash_device_secret(device_secret)
        session.add_all(
            Device(id=d, org_id=org_id, name=d, kind="camera", online=False, secret_hash=secret_hash)
            for d in devices
        )
        user = User(org_id=org_id, email=f"bench-{run_id}@bench.invalid", password_hash="!", role="viewer")
        session.add(user)
        session.flush()
        user_id = user.id

    secret = secrets.token_urlsafe(48)
    ingest_user, ingest_password = "edgefleet-ingest", secrets.token_urlsafe(16)
    mqtt_port = _free_port()
    settings = ServerSettings(
        db_url=db,
        broker="embedded" if embedded else url,
        secret_key=secret,
        ingest_username=ingest_user,
        ingest_password=ingest_password,
        ingest_client_id=f"bench-ingest-{run_id}",
        ingest_group=f"bench-{run_id}",
        embedded_port=mqtt_port,
    )
    if embedded:  # devices connect as themselves (the ACL wants client id == device id)
        fleet = Fleet(
            f"mqtt://127.0.0.1:{mqtt_port}", devices, device_secret, False, (ingest_user, ingest_password)
        )
        log.info("raw broker throughput (a stand-alone embedded broker) ...")
        with standalone_embedded(sessions, ingest_user, ingest_password) as raw_url:
            raw_fleet = Fleet(raw_url, devices, device_secret, False, (ingest_user, ingest_password))
            raw_rate = raw_broker(raw_fleet, int(options.get("raw_count", "20000")), processes)
    else:
        fleet = Fleet(url=url, devices=devices)
        log.info("raw broker throughput ...")
        raw_rate = raw_broker(fleet, int(options.get("raw_count", "60000")), processes)

    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)

    def stored() -> tuple[int, int]:
        """(rows, distinct (device, seq)) of the throughput phase, in one statement (one snapshot)."""
        phase = select(EventRow.device_id, EventRow.seq).where(
            EventRow.org_id == org_id, EventRow.seq < LATENCY_SEQ
        )
        distinct = select(func.count()).select_from(phase.distinct().subquery()).scalar_subquery()
        rows = select(func.count()).select_from(phase.subquery()).scalar_subquery()
        with sessions() as session:
            both = session.execute(select(rows, distinct)).one()
        return int(both[0]), int(both[1])

    try:
        started = time.perf_counter()
        if mode == "flat":  # publishers as fast as the broker accepts, for duration_s
            log.info("ingest throughput: publishing flat out for %.0f s ...", duration)
            pubs = _publishers(
                fleet, 10**9, processes, 0.0, f"ing-{run_id}", extra={"for_s": duration, "fresh_ts": False}
            )
        else:  # at target_rate for duration_s: does the ingest keep up?
            log.info("ingest throughput: %.0f events/s for %.0f s ...", target_rate, duration)
            total = int(target_rate * duration)
            pubs = _publishers(
                fleet,
                total - total % processes,
                processes,
                target_rate,
                f"ing-{run_id}",
                extra={"fresh_ts": False},
            )
        results = _wait(pubs)
        # Time the ingest from the first publish, not from starting the publisher processes.
        wall_minus_perf = time.time() - time.perf_counter()
        first_publish = min((r["started_at"] - wall_minus_perf for r in results), default=started)
        published = sum(r["acked"] for r in results)
        publisher_cpu_s = sum(r.get("cpu_s", 0.0) for r in results)
        publish_s = time.perf_counter() - first_publish
        # Watch the server's own counter (cheap), then count the stored rows once, exactly.
        registry = app.state.edgefleet.metrics.registry
        last_count, last_change = -1.0, time.perf_counter()
        while True:
            count = registry.get_sample_value("edgefleet_ingest_stored_total", {"channel": "event"}) or 0.0
            if count != last_count:
                last_count, last_change = count, time.perf_counter()
            if count >= published or time.perf_counter() - last_change > 30:
                break
            time.sleep(0.2)  # collecting the registry costs GIL time the ingest needs
        ingest_s = last_change - first_publish
        rows, distinct = stored()

        log.info("latency at %.0f events/s ...", latency_rate)
        token = security.issue_token(secret, user_id, org_id, 3600)
        latencies = _latency(port, token, fleet, latency_rate, latency_s, run_id)
        redelivered = registry.get_sample_value("edgefleet_ingest_duplicates_total") or 0.0
    finally:
        server.should_exit = True
        thread.join(30)
        with transaction(sessions) as session:
            session.execute(delete(EventRow).where(EventRow.org_id == org_id))
            session.execute(delete(Organization).where(Organization.id == org_id))
        backend = engine.url.get_backend_name()
        engine.dispose()

    latencies.sort()

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)
            if latencies
            else None
        )

    return {
        "events_per_s": round(distinct / ingest_s, 1),
        "raw_broker_msgs_per_s": round(raw_rate, 1),
        "lost": published - distinct,
        "duplicates": rows - distinct,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "published": published,
        "mode": mode,
        "target_rate": target_rate if mode == "paced" else None,
        "publish_s": round(publish_s, 2),
        "publisher_cpu_us_per_event": round(publisher_cpu_s / max(published, 1) * 1e6, 1),
        "ingest_s": round(ingest_s, 2),
        "lag_s": round(ingest_s - publish_s, 2),
        "redelivered_absorbed": int(redelivered),
        "latency_samples": len(latencies),
        "latency_rate": latency_rate,
        "db": backend,
        "broker": broker,
        "devices": n_devices,
        "publisher_processes": processes,
        "load_1m_start": load_start,
        "load_1m_end": _load_1m(),
    }


def _latency(port: int, token: str, fleet: Fleet, rate: float, seconds: float, run_id: str) -> list[float]:  # noqa: PLR0917
    """Publish at `rate` with fresh timestamps; measure device `ts` -> WebSocket receipt in a separate
    process (a receiver inside this process would queue for the server's GIL)."""
    processes = len(fleet.devices) if fleet.per_device_clients else 1
    count = int(rate * seconds)
    count -= count % processes
    receiver = start_receiver(f"ws://127.0.0.1:{port}/api/v1/stream?token={token}", count, seconds + 30)
    pubs = _publishers(fleet, count, processes, rate, f"lat-{run_id}", first_seq=LATENCY_SEQ)
    _wait(pubs)
    out, _ = receiver.communicate(timeout=seconds + 90)
    latencies: list[float] = json.loads(out.strip().splitlines()[-1])
    return latencies
