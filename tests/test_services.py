"""The test infrastructure itself: real brokers and databases, and the skip/fail policy."""

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.services import MosquittoBroker, PostgresDatabase, in_ci


def _round_trip(broker: MosquittoBroker, topic: str, payload: bytes) -> bytes:
    received: list[bytes] = []
    arrived = threading.Event()

    def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        arrived.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for _ in range(50):  # the subscription may still be in flight
            pub.publish(topic, payload, qos=1).wait_for_publish(2)
            if arrived.wait(0.1):
                break
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.loop_stop()
        sub.disconnect()
    assert received, "nothing arrived"
    return received[0]


@pytest.mark.needs("mosquitto")
def test_private_mosquitto_carries_messages_and_survives_restart(mosquitto: MosquittoBroker) -> None:
    assert _round_trip(mosquitto, "ef/v1/t/event", b"hello") == b"hello"
    port = mosquitto.port
    mosquitto.stop()
    mosquitto.start()
    assert mosquitto.port == port
    assert _round_trip(mosquitto, "ef/v1/t/event", b"again") == b"again"


@pytest.mark.needs("postgres")
def test_fresh_postgres_database_is_created_and_dropped() -> None:
    import psycopg

    database = PostgresDatabase()
    database.create()
    try:
        with psycopg.connect(database.url.replace("postgresql+psycopg", "postgresql")) as conn:
            tables = conn.execute(
                "select count(*) from information_schema.tables where table_schema='public'"
            )
            assert tables.fetchone() == (0,)
    finally:
        database.drop()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(database.url.replace("postgresql+psycopg", "postgresql"), connect_timeout=3)


def test_ci_flag_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    monkeypatch.setenv("CI", "false")
    assert not in_ci()
    monkeypatch.delenv("CI")
    assert not in_ci()


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "errors")])
def test_needs_marker_skips_locally_and_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    repo = Path(__file__).resolve().parents[1]
    pytester.makeconftest(
        "from tests.support import services\n"
        "services.SERVICE_CHECKS['postgres'] = lambda: 'switched off for this test'\n"
        "from tests.conftest import pytest_runtest_setup  # noqa: F401\n"
    )
    pytester.makepyfile("import pytest\n\n@pytest.mark.needs('postgres')\ndef test_x():\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(repo))
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rsf")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*switched off for this test*"])
