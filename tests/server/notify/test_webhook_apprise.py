"""Webhooks to a real HTTP receiver (HMAC signatures, retries after a 500, no duplicate after success),
and an Apprise `json://` URL to one."""

import json
import time
from datetime import timedelta

from edgefleet.contracts import AlarmNotification, utc_now
from edgefleet.server.notify.channels.webhook import ID_HEADER, SIGNATURE_HEADER, signature, verify
from tests.server.notify.conftest import World
from tests.server.notify.receiver import http_receiver

SECRET = "whsec-7Qm2Jd9xLp4Vn8Rt"


def test_webhook_signed_retried_after_500_and_sent_once(world: World) -> None:
    with http_receiver(answers=[500, 503]) as receiver:
        channel = world.channel("webhook", {"url": f"{receiver.url}/hooks/edgefleet?k=1", "secret": SECRET})
        world.rule(channel_ids=[channel], kinds=["anomaly"])
        alarm_id = world.open_alarm("critical")
        worker = world.worker(notify_retry_base_s=2.0)
        now = utc_now()
        assert worker.run_once(now).retrying == 1
        [delivery] = world.deliveries()
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.last_error is not None and "answered 500" in delivery.last_error
        assert "k=1" not in delivery.last_error  # the query (which may hold a token) is not shown
        assert worker.run_once(now + timedelta(seconds=1)).retrying == 0  # backoff: due after 2 s
        assert worker.run_once(now + timedelta(seconds=2)).retrying == 1  # 503; next after 4 s more
        assert worker.run_once(now + timedelta(seconds=6)).sent == 1
        for later in (7, 600, 3600):  # sent: never again
            worker.run_once(now + timedelta(seconds=later))
        requests = receiver.requests
    assert len(requests) == 3
    assert {r.body for r in requests} == {requests[0].body}  # byte-identical resends
    assert {r.headers[ID_HEADER.lower()] for r in requests} == {json.loads(requests[0].body)["id"]}
    for request in requests:
        assert request.path == "/hooks/edgefleet?k=1"
        assert request.headers["content-type"] == "application/json"
        assert verify(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body, time.time())
        assert not verify(
            "another-secret", request.headers[SIGNATURE_HEADER.lower()], request.body, time.time()
        )
        assert not verify(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body + b" ", time.time())
    note = AlarmNotification.model_validate_json(requests[0].body)  # the documented contract
    assert note.change == "opened" and note.alarm is not None and note.alarm.id == alarm_id
    assert note.alarm.severity == "critical" and note.device is not None and note.device.id == world.device_id
    assert note.links.acknowledge is not None and "/notify/ack?token=" in note.links.acknowledge
    assert [d.status for d in world.deliveries()] == ["sent"]


def test_signature_refuses_replays_and_garbage() -> None:
    body = b'{"id": "efn_0"}'
    old = int(time.time()) - 3600
    assert not verify(SECRET, signature(SECRET, old, body), body, time.time())  # replayed an hour later
    assert verify(SECRET, signature(SECRET, old, body), body, old + 10)
    for header in ("", "t=1", "v1=abc", "t=x,v1=00", "garbage"):
        assert not verify(SECRET, header, body, time.time())


def test_apprise_json_url_end_to_end(sqlite_world: World) -> None:
    world = sqlite_world
    with http_receiver() as receiver:
        url = receiver.url.replace("http://", "json://") + "/apprise"
        channel = world.channel("apprise", {"urls": [url]})
        world.rule(channel_ids=[channel])
        world.open_alarm()
        assert world.worker().run_once().sent == 1
        [request] = receiver.requests
    payload = json.loads(request.body)
    assert request.path == "/apprise"
    assert payload["title"] == f"[edgefleet] OPEN warning anomaly alarm on {world.device_id}"
    assert "Acknowledge (opens a confirmation page)" in payload["message"]
    assert "Notification id: efn_" in payload["message"]
    assert payload["type"] == "failure"
    [delivery] = world.deliveries()
    assert (delivery.recipient, delivery.status) == ("url:0", "sent")


def test_apprise_failure_is_logged_per_url(sqlite_world: World) -> None:
    world = sqlite_world
    with http_receiver(answers=[500]) as receiver:
        base = receiver.url.replace("http://", "json://")
        channel = world.channel("apprise", {"urls": [f"{base}/one", f"{base}/two"]})
        world.rule(channel_ids=[channel])
        world.open_alarm()
        result = world.worker().run_once()
        paths = sorted(r.path for r in receiver.requests)
    assert (result.sent, result.retrying) == (1, 1)  # one URL failed, the other is not repeated
    assert paths == ["/one", "/two"]
    failed = [d for d in world.deliveries() if d.status == "pending"]
    assert len(failed) == 1 and failed[0].last_error is not None and failed[0].last_error.startswith("URL ")
