"""The server split into processes by role, on loopback: api x2, ingest x2, worker x2 on Mosquitto,
PostgreSQL and Redis (`cluster.py`). One topology for the module; the tests that kill a process run
last and restart what they killed."""

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select
from websockets.sync.client import connect

from edgefleet.contracts import Channel, encode, topic_for
from edgefleet.server.db import transaction
from edgefleet.server.db.models import AuditEntry, Rollout
from edgefleet.server.schemas import RolloutCreate, RolloutTarget
from edgefleet.server.services import rollouts
from tests.chaos.processes import FleetProcess, StoreMonitor
from tests.server import rollout_kit, seed
from tests.server.conftest import PASSWORD
from tests.server.scale.cluster import FLEET_DEVICES, LEADER_POLL_S, Cluster, wait_until

pytestmark = [pytest.mark.needs("postgres", "mosquitto", "redis"), pytest.mark.timeout(240)]
OWNER = "owner@scale.example"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    stack = Cluster(tmp_path_factory.mktemp("scale"))
    stack.start()
    yield stack
    stack.stop()


def _token(base_url: str) -> str:
    response = httpx.post(base_url + "/api/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


class StreamClient:
    """A WebSocket stream client on one API process, collecting on a thread."""

    def __init__(self, base_url: str, token: str, cursor: int | None = None) -> None:
        url = base_url.replace("http://", "ws://") + f"/api/v1/stream?token={token}"
        self.ws = connect(url + (f"&cursor={cursor}" if cursor is not None else ""))
        self.messages: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                self.messages.append(json.loads(raw))
        except Exception:  # closed
            return

    def events(self, device_id: str) -> list[int]:
        return [
            m["data"]["seq"]
            for m in self.messages
            if m["type"] == "event" and m["data"]["device_id"] == device_id
        ]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(5)


def _publish_events(cluster: Cluster, device_id: str, seqs: range, client: mqtt.Client | None = None) -> None:
    """Events as the device sends them (its own client: one connection per device id)."""
    own = client is None
    if client is None:
        client, _ = cluster.device_client(device_id)
    try:
        for seq in seqs:
            event = seed.anomaly(device_id, seq=seq, ts=datetime.now(UTC))
            client.publish(topic_for(device_id, Channel.EVENT), encode(event), qos=1).wait_for_publish(5)
    finally:
        if own:
            client.disconnect()
            client.loop_stop()


def test_events_reach_stream_clients_on_every_api_process_once(cluster: Cluster) -> None:
    api1, api2 = cluster.processes["api-1"].url, cluster.processes["api-2"].url
    token = _token(api1)
    on1, on2 = StreamClient(api1, token), StreamClient(api2, token)
    device = cluster.bench.devices[0] if cluster.bench else ""
    try:
        time.sleep(0.3)  # both readers are at the stream's end
        _publish_events(cluster, device, range(1, 21))
        wait_until(
            lambda: len(on1.events(device)) >= 20 and len(on2.events(device)) >= 20,
            20,
            "20 events on both",
            explain=lambda: f"{on1.messages}\n{on2.messages}\n{cluster.logs()}",
        )
        time.sleep(0.5)  # nothing more arrives
        # two ingest workers share the device's messages: the order of storing is theirs; once each
        assert sorted(on1.events(device)) == list(range(1, 21))
        assert sorted(on2.events(device)) == list(range(1, 21))
        assert [m["cursor"] for m in on1.messages] == [m["cursor"] for m in on2.messages]  # one stream
        # a browser drops from API 1 and resumes on API 2 from its last cursor: misses nothing
        last = on1.messages[-1]["cursor"]
        on1.close()
        _publish_events(cluster, device, range(21, 31))
        resumed = StreamClient(api2, token, cursor=last)
        try:
            wait_until(lambda: len(resumed.events(device)) >= 10, 20, "the missed events after resuming")
            _publish_events(cluster, device, range(31, 36))
            wait_until(lambda: len(resumed.events(device)) >= 15, 20, "live events after the replay")
            time.sleep(0.3)
            assert sorted(resumed.events(device)) == list(range(21, 36))
        finally:
            resumed.close()
        stale = StreamClient(api1, token, cursor=10**12)  # a cursor the stream never had: reset
        try:
            wait_until(lambda: any(m["type"] == "reset" for m in stale.messages), 10, "a reset")
        finally:
            stale.close()
    finally:
        on1.close()
        on2.close()


def test_a_browser_on_api_1_and_a_command_through_api_2(cluster: Cluster) -> None:
    api1, api2 = cluster.processes["api-1"], cluster.processes["api-2"]
    assert cluster.bench is not None
    device = cluster.bench.devices[1]
    browser = httpx.Client(base_url=api1.url)
    login = browser.post("/api/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert login.status_code == 200, login.text
    cookie = browser.cookies.get("edgefleet_session")
    assert cookie
    stream = StreamClient(api1.url, login.json()["access_token"])
    client, commands = cluster.device_client(device, subscribe=topic_for(device, Channel.CMD))
    try:
        # the same session, its next request balanced to API 2 (same-origin, as a browser sends it)
        sent = httpx.post(
            api2.url + f"/api/v1/devices/{device}/commands",
            json={"command": "publish_status"},
            cookies={"edgefleet_session": cookie},
            headers={"Origin": api2.url},
        )
        assert sent.status_code == 202, sent.text
        wait_until(lambda: len(commands) == 1, 10, "the command at the device")
        assert json.loads(commands[0])["command_id"] == sent.json()["command_id"]
        _publish_events(cluster, device, range(1, 4), client)  # and the browser's stream on API 1 works
        wait_until(
            lambda: sorted(stream.events(device)) == [1, 2, 3],
            10,
            "the device's events on API 1",
            explain=lambda: f"{stream.messages}\n{cluster.logs()}",
        )
    finally:
        client.disconnect()
        client.loop_stop()
        stream.close()
        browser.close()


def test_the_login_limit_is_shared_by_the_api_processes(cluster: Cluster) -> None:
    """5 attempts per account and address in 5 minutes (the default), counted in Redis: alternating
    between the processes, the sixth is refused, whichever process gets it."""
    urls = [cluster.processes["api-1"].url, cluster.processes["api-2"].url]
    email = OWNER.replace("owner", f"nobody-{secrets.token_hex(3)}")
    codes = [
        httpx.post(urls[i % 2] + "/api/v1/auth/login", json={"email": email, "password": "wrong"}).status_code
        for i in range(7)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]


def _fleet_config(cluster: Cluster, workdir: Path) -> dict[str, Any]:
    assert cluster.broker is not None
    return {
        "broker": cluster.broker.url,
        "devices": [
            {"id": d, "password": cluster.device_secret, "faults": "imbalance@1x2,normal@3"}
            for d in FLEET_DEVICES
        ],
        "outbox_dir": str(workdir / "outbox"),
        "record": str(workdir / "record.txt"),
        "telemetry_interval_s": 0.1,  # 6 devices: 60 messages/s
        "tick_s": 0.05,
        "mqtt": {
            "backoff_min_s": 0.1,
            "backoff_max_s": 2.0,
            "keepalive_s": 5,
            "ack_timeout_s": 2.0,
            "ack_timeout_max_s": 4.0,
        },
        "log_level": "INFO",
    }


def test_kill_9_of_an_ingest_worker_under_load_loses_and_duplicates_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    monitor = StoreMonitor(cluster.database.url)
    fleet = FleetProcess(_fleet_config(cluster, tmp_path), tmp_path)
    try:
        fleet.start()
        time.sleep(2.0)
        ingest = cluster.processes["ingest-1"]
        ingest.kill()  # SIGKILL, mid-batch: what it took and did not commit was never acknowledged
        time.sleep(2.0)
        cluster.restart("ingest-1")  # as its supervisor would (Restart=always)
        time.sleep(1.0)
        summary = fleet.drain(40)
        assert summary["drained_s"] is not None, f"outboxes not empty: {summary}\n{cluster.logs()}"
        recorded = fleet.records()
        stored = monitor.stored()
        lost = [key for key in recorded if key not in stored]
        duplicated = {key: n for key, n in stored.items() if key[0] in FLEET_DEVICES and n > 1}
        assert len(recorded) > 200
        assert lost == []
        assert duplicated == {}
    finally:
        fleet.stop()
        monitor.close()


def _leader(cluster: Cluster) -> str | None:
    leaders = [n for n in ("worker-1", "worker-2") if cluster.processes[n].readyz().get("leader")]
    assert len(leaders) <= 1, f"two leaders: {leaders}"
    return leaders[0] if leaders else None


def test_kill_9_of_the_leader_worker_hands_over_and_no_stage_runs_twice(cluster: Cluster) -> None:
    bench = cluster.bench
    assert bench is not None
    leader = _leader(cluster)
    assert leader is not None
    standby = "worker-2" if leader == "worker-1" else "worker-1"
    observers = [cluster.device_client(d, subscribe=topic_for(d, Channel.OTA_CMD)) for d in bench.devices]
    try:
        create = RolloutCreate(
            model_pk=bench.models[rollout_kit.NEW],
            target=RolloutTarget(device_ids=bench.devices),
            stages=[25, 50, 75, 100],  # 2 devices each; none answers: each stage ends by timeout
            gate_s=0,
            device_timeout_s=1.0,
            max_failures=len(bench.devices),
            auto_rollback=False,
        )
        with transaction(bench.sessions) as session:
            rollout_id = rollouts.create_rollout(session, bench.principal(session), create).id

        def stage() -> int:
            return bench.rollout(rollout_id).stage

        wait_until(lambda: stage() >= 1, 20, "the rollout's second stage")
        cluster.processes[leader].kill()
        takeover_s = wait_until(lambda: _leader(cluster) == standby, 15, "the standby leads", step=0.02)
        assert takeover_s <= LEADER_POLL_S + 2.0
        wait_until(lambda: bench.rollout(rollout_id).state == "completed", 30, "the rollout completed")
        time.sleep(1.0)  # the last commands arrive
        with bench.sessions() as session:
            stages = session.scalars(
                select(AuditEntry.detail).where(
                    AuditEntry.action == "rollout.stage", AuditEntry.target_id == str(rollout_id)
                )
            ).all()
            assert session.get(Rollout, rollout_id) is not None
        assert sorted(d["stage"] for d in stages) == [1, 2, 3]  # each stage once
        updates = Counter(
            json.loads(m)["device_id"]
            for _, received in observers
            for m in received
            if json.loads(m)["action"] == "update"
        )
        assert max(updates.values()) == 1  # no device was told twice
        assert sum(updates.values()) >= len(bench.devices) - 2  # a stage at most lost to kill -9
        print(f"takeover in {takeover_s:.2f} s; updates {dict(updates)}")
    finally:
        for client, _ in observers:
            client.disconnect()
            client.loop_stop()
        cluster.restart(leader)
