"""Sampled raw windows: ingest (idempotent, latest N per device), broker ACLs, `GET /api/v1/samples`."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import DEVICE_CHANNELS, Channel, encode, topic_for
from edgefleet.dsp.window_codec import unpack_base64
from edgefleet.server import create_app
from edgefleet.server.broker import DeviceAuthority
from edgefleet.server.db.models import WindowSampleRow
from edgefleet.server.ingest import IngestStore, Received
from edgefleet.server.mosquitto import acl_text
from tests.server import seed
from tests.server.conftest import make_settings, sign_up
from tests.server.window_samples import T0, ingest, window_sample


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
    else:
        url = f"sqlite:///{tmp_path / 'samples.db'}"
    with seed.organization_db(url, ("s1", "s2")) as factory:
        yield factory


def _stored(sessions: sessionmaker[Session], device_id: str) -> list[WindowSampleRow]:
    with sessions() as session:
        query = select(WindowSampleRow).where(WindowSampleRow.device_id == device_id)
        return list(session.scalars(query.order_by(WindowSampleRow.seq)))


def test_a_sample_is_stored_as_sent_once(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    window = np.random.default_rng(3).normal(0, 0.2, (128, 6))
    sample = window_sample("s1", 5, window)
    result = ingest(store, [sample, sample])
    assert result.stored == {"sample": 1} and result.duplicates == 1 and not result.rejected
    assert ingest(store, [sample]).duplicates == 1  # a resend after a reconnect
    (row,) = _stored(sessions, "s1")
    assert (row.device_kind, row.model_id, row.model_version) == ("vibration", "vib-ae", "1.0.0")
    assert row.window_index == 50
    assert (row.axes, row.length, row.encoding, row.ts) == (sample.axes, 128, "int16le", sample.ts)
    restored = unpack_base64(row.data, row.scale, row.length)
    assert np.max(np.abs(restored - window)) <= np.abs(window).max() / 32767


def test_only_the_latest_samples_per_device_are_kept(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions, sample_keep_per_device=5)
    ingest(store, [window_sample("s1", seq) for seq in range(1, 9)])  # one batch over the cap
    ingest(store, [window_sample("s2", seq) for seq in range(1, 4)])
    assert [r.seq for r in _stored(sessions, "s1")] == [4, 5, 6, 7, 8]
    assert [r.seq for r in _stored(sessions, "s2")] == [1, 2, 3]  # the cap is per device
    ingest(store, [window_sample("s1", 9)])
    assert [r.seq for r in _stored(sessions, "s1")] == [5, 6, 7, 8, 9]
    # A sample taken long ago (delivered late, after an outage) is older than all kept: not kept.
    late = window_sample("s1", 10, ts=T0 - timedelta(days=1))
    assert ingest(store, [late]).stored == {"sample": 1}
    assert [r.seq for r in _stored(sessions, "s1")] == [5, 6, 7, 8, 9]


def test_bad_samples_are_rejected_and_do_not_stop_the_batch(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    good = window_sample("s1", 1)
    broken = good.model_dump_json(by_alias=True).replace('"length":128', '"length":127')
    result = store.write(
        [
            Received(topic_for("s1", Channel.SAMPLE), broken.encode()),
            Received(topic_for("ghost", Channel.SAMPLE), encode(window_sample("ghost", 1))),
            Received(topic_for("s2", Channel.SAMPLE), good.model_dump_json().encode()),  # s1's sample
            Received(topic_for("s1", Channel.SAMPLE), good.model_dump_json().encode()),
        ]
    )
    assert result.rejected == {"invalid": 1, "unknown_device": 1, "device_mismatch": 1}
    assert result.stored == {"sample": 1}


def test_both_brokers_let_a_device_publish_its_own_samples_only() -> None:
    authority = DeviceAuthority(None, "ingest", "pw")  # type: ignore[arg-type]  # sessions: login only
    from amqtt.contexts import Action

    assert authority.allowed("s1", topic_for("s1", Channel.SAMPLE), Action.PUBLISH)
    assert not authority.allowed("s1", topic_for("s2", Channel.SAMPLE), Action.PUBLISH)
    assert authority.allowed("ingest", topic_for("s1", Channel.SAMPLE), Action.SUBSCRIBE)
    acl = acl_text("ingest")
    assert "topic read ef/v1/+/sample" in acl and "pattern write ef/v1/%u/sample" in acl
    for channel in DEVICE_CHANNELS:
        assert f"pattern write ef/v1/%u/{channel.value}\n" in acl


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, IngestStore, dict[str, str], dict[str, str]]]:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        a = sign_up(client, "a@plant.example", "A")
        b = sign_up(client, "b@plant.example", "B")
        sessions = app.state.edgefleet.sessions
        for device in ("a1", "a2"):
            seed.add_device(sessions, a.org_id, device)
        seed.add_device(sessions, b.org_id, "b1")
        yield client, IngestStore(sessions), a.headers, b.headers


def test_the_api_filters_and_pages_samples_of_the_callers_organization(
    api: tuple[TestClient, IngestStore, dict[str, str], dict[str, str]],
) -> None:
    client, store, a, b = api
    ingest(store, [window_sample("a1", seq) for seq in range(1, 8)])
    ingest(store, [window_sample("a2", seq, model_version="2.0.0") for seq in range(1, 4)])
    ingest(store, [window_sample("a2", 10, model_id="other-model")])
    ingest(store, [window_sample("b1", 1)])

    def get(headers: dict[str, str], **params: object) -> dict[str, Any]:
        response = client.get("/api/v1/samples", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = get(a, limit=1000)["items"]
    assert len(everything) == 11
    assert {s["device_id"] for s in everything} == {"a1", "a2"}  # never org B's
    assert [s["device_id"] for s in get(b)["items"]] == ["b1"]
    assert len(get(a, model_id="vib-ae")["items"]) == 10
    assert len(get(a, model_id="vib-ae", model_version="2.0.0")["items"]) == 3
    assert len(get(a, device_id="a1")["items"]) == 7
    assert get(a, device_kind="camera")["items"] == []
    recent = get(a, device_id="a1", since=(T0 + timedelta(seconds=5)).isoformat())["items"]
    assert [s["seq"] for s in recent] == [7, 6, 5]

    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = get(a, limit=4, **({"cursor": cursor} if cursor else {}))
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 11 and seen == sorted(seen, reverse=True)  # newest first, no repeats

    first = everything[0]
    assert set(first) >= {"device_id", "seq", "ts", "window", "axes", "length", "scale", "data", "encoding"}
    window = unpack_base64(first["data"], first["scale"], first["length"])
    assert window.shape == (128, 6)
    assert client.get("/api/v1/samples", params={"cursor": "x"}, headers=a).status_code == 400
    assert client.get("/api/v1/samples").status_code == 401
