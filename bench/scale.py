"""Scale-out by role: events/s stored, publish -> WebSocket p50/p99 per API replica, 1 and 2 ingest workers.

Beside them: the raw broker's rate in the same run, and CPU seconds per 1,000 events of each server
process and of the PostgreSQL backends serving them (`/proc/<pid>/stat`).
"""

import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

from _brokers import mosquitto_version, private_mosquitto
from _ws_latency import start_receiver
from ingest import Fleet, _publishers, _wait, raw_broker

PACKAGES = ("fastapi", "sqlalchemy", "paho-mqtt", "psycopg", "redis", "uvicorn")
PG_ADMIN = os.environ.get("EDGEFLEET_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
LATENCY_SEQ = 10**9
log = logging.getLogger("bench.scale")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/<pid>/stat), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Stack:
    """A private Mosquitto, a fresh PostgreSQL database, Redis under a prefix of this run, and the
    server processes (`edgefleet server --role ...`), each stopped by its PID."""

    def __init__(self, tmp: Path, redis_url: str, exit_stack: ExitStack) -> None:
        self.tmp, self.redis_url, self.exit = tmp, redis_url, exit_stack
        self.run_id = secrets.token_hex(3)
        self.database = f"edgefleet_bench_{self.run_id}"
        self.db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}"
        self.broker = exit_stack.enter_context(private_mosquitto(tmp / "mosquitto"))
        self.prefix = f"edgefleet-bench-{self.run_id}"
        self.secret = secrets.token_urlsafe(48)
        self.processes: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
        exit_stack.callback(self._drop)

    def _drop(self) -> None:
        import redis

        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(match=f"{self.prefix}*"):
            client.delete(key)
        client.close()

    def start(self, name: str, role: str) -> str:
        port = _free_port()
        env = {
            **os.environ,
            "EDGEFLEET_DB_URL": self.db_url,
            "EDGEFLEET_BROKER": self.broker,
            "EDGEFLEET_REDIS_URL": self.redis_url,
            "EDGEFLEET_REDIS_PREFIX": self.prefix,
            "EDGEFLEET_RATELIMIT_PREFIX": self.prefix,
            "EDGEFLEET_SECRET_KEY": self.secret,
            "EDGEFLEET_INGEST_PASSWORD": secrets.token_urlsafe(32),
            "EDGEFLEET_INGEST_USERNAME": f"edgefleet-ingest-{name}",
            "EDGEFLEET_INGEST_CLIENT_ID": f"edgefleet-ingest-{name}-{self.run_id}",
            "EDGEFLEET_INGEST_GROUP": f"bench-{self.run_id}",
            "EDGEFLEET_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "edgefleet", "server", "--role", role]
        out = (self.tmp / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.exit.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{name} was not ready within 120 s")
        self.processes[name] = (process, url)
        return url

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pid) for name, (p, _) in self.processes.items()}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _seed(db_url: str, devices: list[str]) -> tuple[int, int]:
    from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
    from edgefleet.server.db.models import Device, Organization, User

    engine = make_engine(db_url)
    upgrade(engine)
    with transaction(make_sessionmaker(engine)) as session:
        org = Organization(name="bench")
        session.add(org)
        session.flush()
        session.add_all(Device(id=d, org_id=org.id, name=d, kind="camera", online=False) for d in devices)
        user = User(org_id=org.id, email="bench@bench.invalid", password_hash="!", role="viewer")
        session.add(user)
        session.flush()
        ids = (org.id, user.id)
    engine.dispose()
    return ids


def _db_backends(stack: Stack) -> list[int]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (stack.database,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _stored(stack: Stack) -> int:
    with psycopg.connect(stack.db_url.replace("postgresql+psycopg", "postgresql")) as connection:
        row = connection.execute("SELECT count(*) FROM events WHERE seq < %s", (LATENCY_SEQ,)).fetchone()
    return int(row[0]) if row else 0


def _throughput(stack: Stack, fleet: Fleet, count: int, publishers: int, first_seq: int) -> dict[str, Any]:
    """Publish `count` events as fast as the broker takes them, wait until all are stored: events/s
    stored (first publish to last stored) and CPU per role per 1,000 events."""
    before = _stored(stack)
    backends = _db_backends(stack)
    cpu0 = stack.cpu()
    db0 = sum(cpu_seconds(pid) for pid in backends if Path(f"/proc/{pid}").exists())
    started = time.perf_counter()
    total = count - count % publishers
    tag = f"t{secrets.token_hex(2)}"
    results = _wait(_publishers(fleet, total, publishers, 0.0, tag, first_seq, extra={"fresh_ts": False}))
    published = sum(r["acked"] for r in results)
    last, changed = -1, time.perf_counter()
    while time.perf_counter() - changed < 30:
        stored = _stored(stack) - before
        if stored != last:
            last, changed = stored, time.perf_counter()
        if stored >= published:
            break
        time.sleep(0.25)
    elapsed = changed - started
    cpu1 = stack.cpu()
    db1 = sum(cpu_seconds(pid) for pid in backends if Path(f"/proc/{pid}").exists())
    per_k = {name: round((cpu1[name] - cpu0[name]) / max(last, 1) * 1000, 4) for name in cpu0}
    per_k["postgres_backends"] = round((db1 - db0) / max(last, 1) * 1000, 4)
    return {
        "published": published,
        "stored": last,
        "lost": published - last,
        "events_per_s": round(last / elapsed, 1),
        "cpu_s_per_1000_events": per_k,
    }


def _latency(  # noqa: PLR0917
    fleet: Fleet, api_urls: list[str], token: str, first_seq: int, rate: float, seconds: float
) -> dict[str, Any]:
    count = int(rate * seconds)
    receivers = []
    for url in api_urls:
        ws = url.replace("http://", "ws://") + f"/api/v1/stream?token={token}"
        receivers.append(start_receiver(ws, count, seconds + 30))
    _wait(_publishers(fleet, count, 1, rate, f"l{secrets.token_hex(2)}", first_seq=first_seq))
    out: dict[str, Any] = {}
    for i, receiver in enumerate(receivers):
        stdout, _ = receiver.communicate(timeout=seconds + 90)
        latencies = sorted(json.loads(stdout.strip().splitlines()[-1]))

        def pct(q: float, values: list[float] = latencies) -> float | None:
            return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2) if values else None

        out[f"api-{i + 1}"] = {"received": len(latencies), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}
    return out


def run(options: Mapping[str, str]) -> dict[str, Any]:
    """`--count` (30000) events published flat out per phase, `--devices` (200), `--publishers` (2),
    `--explain-events` (0: skip; 10000000 for the capacity doc) over `--explain-devices` (10000),
    `--latency-rate` (200 events/s) for `--latency-s` (10), `--redis` (redis://127.0.0.1:6379/0)."""
    from edgefleet.server import security

    count = max(1000, min(int(options.get("count", "30000")), 2_000_000))
    n_devices = max(2, min(int(options.get("devices", "200")), 10_000))
    publishers = max(1, min(int(options.get("publishers", "2")), 4))
    latency_rate = float(options.get("latency_rate", "200"))
    latency_s = min(float(options.get("latency_s", "10")), 60.0)
    redis_url = options.get("redis", "redis://127.0.0.1:6379/0")
    figures: dict[str, Any] = {"broker": f"mosquitto {mosquitto_version()}", "devices": n_devices}
    with ExitStack() as exit_stack:
        tmp = Path(exit_stack.enter_context(tempfile.TemporaryDirectory(prefix="edgefleet-scale-")))
        stack = Stack(tmp, redis_url, exit_stack)
        devices = [f"scale-{stack.run_id}-{i}" for i in range(n_devices)]
        org_id, user_id = _seed(stack.db_url, devices)
        fleet = Fleet(url=stack.broker, devices=devices)
        log.info("raw broker rate ...")
        figures["raw_broker_msgs_per_s"] = round(
            raw_broker(fleet, int(options.get("raw_count", "40000")), publishers), 1
        )
        api_urls = [stack.start("api-1", "api"), stack.start("api-2", "api")]
        stack.start("worker-1", "worker")
        stack.start("ingest-1", "ingest")
        token = security.issue_token(stack.secret, user_id, org_id, 3600)
        for workers in (1, 2):
            if workers == 2:
                stack.start("ingest-2", "ingest")
            log.info("%d ingest worker(s): throughput ...", workers)
            phase = _throughput(stack, fleet, count, publishers, first_seq=1 + workers * 10**8)
            log.info("%d ingest worker(s): latency ...", workers)
            latency_seq = LATENCY_SEQ + workers * 10**8  # seqs of their own: nothing is a resend
            phase["latency"] = _latency(fleet, api_urls, token, latency_seq, latency_rate, latency_s)
            figures[f"ingest_workers_{workers}"] = phase
        explain_events = int(options.get("explain_events", "0"))
        if explain_events:  # EXPLAIN of the main queries at volume (generated in SQL: bench/_explain.py)
            from _explain import explain

            dsn = stack.db_url.replace("postgresql+psycopg", "postgresql")
            explain_devices = int(options.get("explain_devices", "10000"))
            figures["explain"] = explain(dsn, org_id, explain_events, explain_devices)
    figures["cores"] = os.cpu_count()
    return figures
