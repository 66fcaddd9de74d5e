"""The end-to-end acknowledgement, server side: after its batch commits, the ingest publishes an `Ack`
per device on `ef/v1/{device_id}/ack` covering what is stored, what was stored before and what is
refused as bad data; never what the database did not take. Real Mosquitto, real databases."""

import logging
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from edgefleet.contracts import Channel, ack_ranges, encode, topic_for
from edgefleet.server import create_app
from edgefleet.server.app import build_context
from edgefleet.server.db import upgrade
from edgefleet.server.mosquitto import BROKER_SETTINGS, MosquittoSync
from tests.server import seed
from tests.server.ack_kit import AckDevice, add_device, bad_event, metric
from tests.server.conftest import make_settings, sign_up
from tests.server.mqtt_helpers import wait_until
from tests.support.services import PG_ADMIN_DSN, MosquittoBroker, PostgresDatabase, free_port

pytestmark = pytest.mark.timeout(60)


MODES = [pytest.param("mosquitto", marks=pytest.mark.needs("mosquitto")), "embedded"]


def _broker(mode: str, request: pytest.FixtureRequest) -> tuple[int, dict[str, object]]:
    """(port, settings) of a private Mosquitto or of the embedded broker on a free port."""
    if mode == "mosquitto":
        broker: MosquittoBroker = request.getfixturevalue("mosquitto")
        return broker.port, {"broker": broker.url}
    port = free_port()
    return port, {"broker": "embedded", "embedded_port": port}


@pytest.mark.parametrize("mode", MODES)
def test_acks_cover_stored_duplicate_and_refused_messages_only(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> None:
    port, overrides = _broker(mode, request)
    settings = make_settings(tmp_path, ingest_client_id=f"ingest-acks-{mode}", **overrides)
    embedded = mode == "embedded"
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        creds = add_device(client, owner.headers, "press-1")
        topic = topic_for("press-1", Channel.EVENT)
        device = AckDevice(
            port, "press-1", password=creds["password"] if embedded else None, mqtt5=not embedded
        )
        with device:
            device.send(seed.status("press-1", seq=100), Channel.STATUS)  # beside the outbox: no ack
            events = [seed.anomaly("press-1", seq=n) for n in range(1, 21)]
            for event in events + events[:5]:  # the last five are resends: acked again
                device.send(event, Channel.EVENT)
            device.send(seed.telemetry("press-1", seq=21), Channel.TELEMETRY)
            device.send_raw(topic, bad_event("press-1", 30))  # invalid: refused, resending cannot help
            device.send_raw(topic, encode(seed.anomaly("other-1", seq=31)))  # names another device
            device.send_raw(topic, bad_event("press-1", 40, schema=99, score=0.9))  # a newer schema
            device.send_raw(topic, b"{not json")  # no seq to acknowledge
            if not embedded:  # (the embedded broker refuses unknown devices at CONNECT)
                with AckDevice(port, "ghost") as ghost:
                    ghost.send(seed.anomaly("ghost", seq=1), Channel.EVENT)  # an unknown device
                    time.sleep(0.5)
                    assert ghost.acks == []
            expected = set(range(1, 22)) | {30, 31}
            device.wait_covered(expected)
            time.sleep(0.5)  # anything acknowledged late would show now
            assert device.covered() == expected
            assert device.foreign == []
            for ack in device.acks:
                assert ack.device_id == "press-1" and ack.ranges == ack_ranges(ack.covers())
        acked = metric(client, owner.headers, "edgefleet_ingest_acked_total") or 0
        assert len(expected) <= acked <= len(expected) + 5  # a resend in a later batch is acked again
        assert (metric(client, owner.headers, "edgefleet_ingest_acks_total") or 0) >= 1
        assert metric(client, owner.headers, "edgefleet_ingest_ack_failures_total") == 0
        text = client.get("/metrics", headers=owner.headers).text
        # the ingest does not subscribe to `ack`: its own acks never come back to it
        assert 'channel="ack"' not in text and 'reason="wrong_direction"' not in text


def test_a_burst_is_acknowledged_in_merged_ranges(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-burst-acks")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        add_device(client, owner.headers, "lathe-1")
        with AckDevice(mosquitto.port, "lathe-1", max_inflight=200) as device:
            infos = [
                device.client.publish(
                    topic_for("lathe-1", Channel.EVENT), encode(seed.anomaly("lathe-1", seq=n)), qos=1
                )
                for n in range(1, 1001)
                if n % 100 != 50  # gaps: seqs 50, 150, ... never sent
            ]
            for info in infos:
                info.wait_for_publish(20)
            expected = {n for n in range(1, 1001) if n % 100 != 50}
            device.wait_covered(expected, 30)
            assert device.covered() == expected
        ranges = [r for ack in device.acks for r in ack.ranges]
        assert len(device.acks) < len(expected) / 5, "one ack per device and batch, not per message"
        assert any(hi - lo >= 10 for lo, hi in ranges)
        for ack in device.acks:
            assert ack.ranges == ack_ranges(ack.covers())  # ascending, merged, gaps kept
            assert all(not lo <= 50 + 100 * k <= hi for lo, hi in ack.ranges for k in range(10))


def _locked(path: Path) -> sqlite3.Connection:
    """Another writer holding SQLite's write lock: the ingest's commits wait (a database that cannot
    write now), its reads go on (WAL)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=1)
    connection.execute("BEGIN IMMEDIATE")
    return connection


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_acked_before_the_commit_and_a_persistent_session_gets_the_ack_later(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> None:
    port, overrides = _broker(mode, request)
    settings = make_settings(tmp_path, ingest_client_id=f"ingest-commit-{mode}", **overrides)
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        creds = add_device(client, owner.headers, "kiln-1")
        device = AckDevice(
            port,
            "kiln-1",
            password=creds["password"] if mode == "embedded" else None,
            mqtt5=mode == "mosquitto",
            persistent=True,
        )
        with device:
            for n in range(1, 6):
                device.send(seed.anomaly("kiln-1", seq=n), Channel.EVENT)
            device.wait_covered(set(range(1, 6)))
        lock = _locked(tmp_path / "server.db")
        try:
            with device:
                for n in range(6, 11):  # the broker's PUBACK arrives: it says nothing about storage
                    device.send(seed.anomaly("kiln-1", seq=n), Channel.EVENT)
                time.sleep(1.5)
                assert device.covered() == set(range(1, 6)), "acknowledged before it was stored"
            # the device is away (persistent session) when the database takes the batch
        finally:
            lock.rollback()
            lock.close()
        wait_until(
            lambda: metric(client, owner.headers, "edgefleet_ingest_acked_total") == 10, 20, "the commit"
        )
        with device:  # the broker kept the ack for the device's session
            device.wait_covered(set(range(1, 11)), 10)
        stored = client.get("/api/v1/events", params={"device_id": "kiln-1"}, headers=owner.headers).json()
        assert sorted(e["seq"] for e in stored["items"]) == list(range(1, 11))


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresDatabase]:
    """A database of this test's own: it is switched to read-only, which nobody else should see."""
    database = PostgresDatabase()
    database.create()
    yield database
    database.drop()


def _set_read_only(database: PostgresDatabase, read_only: bool) -> None:
    """A failover's effect: new sessions are read-only (or writable again); existing ones are cut."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        value = "on" if read_only else "off"
        admin.execute(f'ALTER DATABASE "{database.name}" SET default_transaction_read_only = {value}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database.name,),
        )


def _stored_seqs(database: PostgresDatabase, device_id: str) -> list[int]:
    dsn = PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database.name}")
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT seq FROM events WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()
    return [int(row[0]) for row in rows]


@pytest.mark.needs("postgres", "mosquitto")
def test_a_read_only_database_gets_nothing_acknowledged_until_it_writes_again(
    tmp_path: Path, mosquitto: MosquittoBroker, fresh_postgres: PostgresDatabase
) -> None:
    settings = make_settings(
        tmp_path, db_url=fresh_postgres.url, broker=mosquitto.url, ingest_client_id="ingest-read-only"
    )
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        add_device(client, owner.headers, "pump-1")
        with AckDevice(mosquitto.port, "pump-1") as device:
            for n in range(1, 6):
                device.send(seed.anomaly("pump-1", seq=n), Channel.EVENT)
            device.wait_covered(set(range(1, 6)))
            _set_read_only(fresh_postgres, True)
            try:
                for n in range(6, 11):
                    device.send(seed.anomaly("pump-1", seq=n), Channel.EVENT)
                time.sleep(2.0)
                assert device.covered() == set(range(1, 6)), "acknowledged what the database refused"
                assert _stored_seqs(fresh_postgres, "pump-1") == list(range(1, 6))
            finally:
                _set_read_only(fresh_postgres, False)
            device.wait_covered(set(range(1, 11)), 20)
        assert _stored_seqs(fresh_postgres, "pump-1") == list(range(1, 11))


def test_acks_under_the_generated_acl(
    tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """The generated ACL lets the ingest write `ack` and each device read only its own; an ACL that
    does not is reported."""
    password_file, acl_file, pid_file = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.pid"
    settings = make_settings(
        tmp_path,
        broker=mosquitto.url,
        ingest_client_id="ingest-ack-acl",
        mosquitto_password_file=str(password_file),
        mosquitto_acl_file=str(acl_file),
        mosquitto_pid_file=str(pid_file),
    )
    context = build_context(settings)
    upgrade(context.engine)
    MosquittoSync(context.sessions, settings).sync()  # the files must exist before Mosquitto starts
    context.engine.dispose()
    mosquitto.stop()
    mosquitto.extra_config = f"password_file {password_file}\nacl_file {acl_file}\n"
    mosquitto.start()
    assert mosquitto.process is not None
    pid_file.write_text(str(mosquitto.process.pid))
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        mine = add_device(client, owner.headers, "saw-1")
        theirs = add_device(client, owner.headers, "saw-2")
        time.sleep(0.3)  # SIGHUP is asynchronous
        spy = AckDevice(mosquitto.port, "saw-2", password=theirs["password"], ack_topic="ef/v1/saw-1/ack")
        with spy, AckDevice(mosquitto.port, "saw-1", password=mine["password"]) as device:
            # Mosquitto 2.0.11 grants the subscription and applies the ACL on delivery
            for n in range(1, 4):
                device.send(seed.anomaly("saw-1", seq=n), Channel.EVENT)
            device.wait_covered({1, 2, 3})
            time.sleep(0.3)
            assert spy.acks == [] and spy.foreign == []
            assert metric(client, owner.headers, "edgefleet_ingest_ack_failures_total") == 0
            # an ACL of before `ack` existed: the broker refuses the ingest's acks, and says so
            acl_file.write_text(acl_file.read_text().replace("topic write ef/v1/+/ack\n", ""))
            mosquitto.reload()
            time.sleep(0.3)
            device.send(seed.anomaly("saw-1", seq=4), Channel.EVENT)
            wait_until(
                lambda: metric(client, owner.headers, "edgefleet_ingest_ack_failures_total") == 1,
                what="the refused ack counted",
            )
            assert 4 not in device.covered()
        assert any("refused an ack" in r.getMessage() for r in caplog.records)


def _lost_sessions(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "session present: False" in r.getMessage()]


def test_a_lost_broker_session_is_reported_at_warning(
    tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto's default `autosave_interval` (1800 s): a crash before the first save loses every
    session; a clean stop saves them."""
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-session")
    caplog.set_level(logging.WARNING, logger="edgefleet.server.ingest.worker")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        add_device(client, owner.headers, "mill-1")
        lost = _lost_sessions(caplog)
        assert len(lost) == 1 and lost[0].levelno == logging.WARNING  # a first start: no session yet
        mosquitto.stop(signal.SIGKILL)  # a crash: nothing was saved
        mosquitto.start()
        wait_until(lambda: len(_lost_sessions(caplog)) == 2, 20, "the warning after the session was lost")
        with AckDevice(mosquitto.port, "mill-1") as device:
            wait_until(lambda: _acked_after_send(device, 1), 20, "an ack after the lost session")
        mosquitto.stop()  # SIGTERM: Mosquitto saves its sessions, the ingest's comes back
        mosquitto.start()
        with AckDevice(mosquitto.port, "mill-1") as device:
            wait_until(lambda: _acked_after_send(device, 2), 20, "an ack after the clean restart")
        assert len(_lost_sessions(caplog)) == 2


def test_with_the_documented_settings_a_crashed_broker_keeps_the_sessions(
    tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """`BROKER_SETTINGS` (docs/server.md) save sessions every `autosave_interval` seconds (1 s here)."""
    assert "\nautosave_interval 30\n" in BROKER_SETTINGS
    mosquitto.stop()
    mosquitto.extra_config = BROKER_SETTINGS.replace("autosave_interval 30", "autosave_interval 1")
    mosquitto.start()
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-autosave")
    caplog.set_level(logging.WARNING, logger="edgefleet.server.ingest.worker")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        add_device(client, owner.headers, "mill-2")
        with AckDevice(mosquitto.port, "mill-2", persistent=True) as device:
            wait_until(lambda: _acked_after_send(device, 1), 20, "the first ack")
        time.sleep(2.5)  # an autosave of the ingest's and the device's sessions
        mosquitto.stop(signal.SIGKILL)
        mosquitto.start()
        with AckDevice(mosquitto.port, "mill-2", persistent=True) as device:
            wait_until(lambda: _acked_after_send(device, 2), 20, "an ack after the crash")
        assert len(_lost_sessions(caplog)) == 1  # only the first start
        log_text = (mosquitto.workdir / "mosquitto.log").read_text()
        assert "Error" not in log_text, log_text


def _acked_after_send(device: AckDevice, seq: int) -> bool:
    """Send (again) until acknowledged, as a device resends what stays unacknowledged."""
    if seq not in device.covered():
        device.send(seed.anomaly(device.device_id, seq=seq), Channel.EVENT)
        time.sleep(0.3)
    return seq in device.covered()


def test_the_embedded_broker_keeps_acks_to_their_device(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path, broker="embedded", embedded_port=port, ingest_client_id="ingest-acl-emb"
    )
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        mine = add_device(client, owner.headers, "saw-1")
        theirs = add_device(client, owner.headers, "saw-2")
        spy = AckDevice(port, "saw-2", password=theirs["password"], mqtt5=False, ack_topic="ef/v1/saw-1/ack")
        with spy, AckDevice(port, "saw-1", password=mine["password"], mqtt5=False) as device:
            assert spy.granted == [0x80], "subscribing to another device's acks is refused"
            for n in range(1, 4):
                device.send(seed.anomaly("saw-1", seq=n), Channel.EVENT)
            device.wait_covered({1, 2, 3})
            time.sleep(0.3)
            assert spy.acks == [] and spy.foreign == []


def test_docs_show_the_broker_settings_of_the_code() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs/server.md").read_text(encoding="utf-8")
    assert f"```\n{BROKER_SETTINGS}```" in docs


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_shared_subscriptions_lose_nothing_across_a_broker_restart_when_devices_resend(
    tmp_path: Path, mosquitto: MosquittoBroker, crash: bool
) -> None:
    """Mosquitto 2.0.11 does not restore shared subscriptions: what devices publish before the ingest
    has subscribed again reaches nobody, yet gets its PUBACK. It gets no `ack`, so a device resends it."""
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-shared-restart")
    assert settings.ingest_shared
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        add_device(client, owner.headers, "mill-3")
        mosquitto.stop(signal.SIGKILL if crash else signal.SIGTERM)
        mosquitto.start()
        sent = set(range(1, 51))
        with AckDevice(mosquitto.port, "mill-3", persistent=True) as device:
            for seq in sorted(sent):  # at once: the ingest reconnects a second or more later
                device.send(seed.anomaly("mill-3", seq=seq), Channel.EVENT)
            deadline = time.monotonic() + 30
            while not sent <= device.covered() and time.monotonic() < deadline:
                time.sleep(2.0)  # the device's resend timeout
                for seq in sorted(sent - device.covered()):
                    device.send(seed.anomaly("mill-3", seq=seq), Channel.EVENT)
            assert device.covered() == sent
        events = client.get(
            "/api/v1/events", params={"device_id": "mill-3", "limit": 100}, headers=owner.headers
        )
        assert sorted(e["seq"] for e in events.json()["items"]) == sorted(sent)  # stored once each
