"""`/api/v1/stream`: org-scoped push of events, alarms and device changes, with a resume cursor."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from edgefleet.server.context import ServerContext
from edgefleet.server.ingest import IngestStore
from tests.server import seed
from tests.server.conftest import sign_up


def _ingest(context: ServerContext, store: IngestStore, *messages: Any) -> None:
    """Store like the ingest worker does, then announce on the hub as it does after commit."""
    for org_id, type_, data in seed.ingest(store, *messages).notifications:
        context.hub.publish(org_id, type_, data)


def _types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


def test_stream_is_org_scoped_and_resumable(client: TestClient) -> None:
    a = sign_up(client, "a@example.com", "A")
    b = sign_up(client, "b@example.com", "B")
    context: ServerContext = client.app.state.edgefleet  # type: ignore[attr-defined]
    seed.add_device(context.sessions, a.org_id, "a-1")
    seed.add_device(context.sessions, b.org_id, "b-1")
    store = IngestStore(context.sessions)

    with client.websocket_connect("/api/v1/stream", headers=a.headers) as ws:
        _ingest(context, store, seed.anomaly("b-1"))  # B's: must not reach A
        _ingest(context, store, seed.status("a-1"), seed.anomaly("a-1"))
        received = [ws.receive_json() for _ in range(3)]
    assert _types(received) == ["event", "alarm", "device"] or sorted(_types(received)) == [
        "alarm",
        "device",
        "event",
    ]
    assert all(m["data"]["device_id"] == "a-1" for m in received)
    last = max(m["cursor"] for m in received)

    _ingest(context, store, seed.anomaly("a-1"), seed.anomaly("b-1"))  # while A is away
    with client.websocket_connect(f"/api/v1/stream?cursor={last}&token={a.token}") as ws:
        missed = ws.receive_json()
    assert missed["type"] == "event" and missed["data"]["device_id"] == "a-1" and missed["cursor"] > last

    with client.websocket_connect(f"/api/v1/stream?cursor=999999&token={a.token}") as ws:
        assert ws.receive_json()["type"] == "reset"


def test_stream_refuses_anonymous_and_bad_tokens(client: TestClient) -> None:
    for url in ("/api/v1/stream", "/api/v1/stream?token=nonsense"):
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url) as ws:
            ws.receive_json()
        assert info.value.code == 1008
