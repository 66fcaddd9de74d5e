"""Channel credentials stay out of what members see and of the logs: an ntfy topic (the credential of
an ntfy URL) that a failing service would echo, and a token in an incoming-webhook URL's path."""

import json
import logging

import pytest

from edgefleet.server.notify import service
from tests.server.notify.conftest import World
from tests.server.notify.receiver import http_receiver

TOPIC = "alerts-Zq8vW3kT5nR1"
HOOK_TOKEN = "T0001/B0002/xoxbSecretToken77"


def _visible(world: World) -> str:
    """Everything the API returns about channels and deliveries, and the delivery rows themselves."""
    with world.sessions() as session:
        principal = world.principal(session)
        api = [
            *(c.model_dump(mode="json") for c in service.list_channels(session, principal)),
            *(
                d.model_dump(mode="json")
                for d in service.list_deliveries(session, principal, None, None, 100)
            ),
        ]
    rows = [{k: str(v) for k, v in vars(d).items() if not k.startswith("_")} for d in world.deliveries()]
    return json.dumps([api, rows])


def test_failing_apprise_and_webhook_urls_leak_no_credentials(
    sqlite_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = sqlite_world
    caplog.set_level(logging.DEBUG)
    with http_receiver(answers=[500, 500, 500, 500]) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        ntfy = world.channel("apprise", {"urls": [f"ntfy://127.0.0.1:{port}/{TOPIC}"]}, name="ntfy")
        hook = world.channel("webhook", {"url": f"{receiver.url}/services/{HOOK_TOKEN}"}, name="slack")
        world.rule(channel_ids=[ntfy, hook])
        world.open_alarm()
        result = world.worker().run_once()
        assert len(receiver.requests) == 2  # both were really tried, and both refused
    assert result.retrying == 2
    seen = _visible(world)
    errors = sorted(d.last_error or "" for d in world.deliveries())
    assert errors[0].startswith("POST http://127.0.0.1:") and "answered 500" in errors[0]
    assert errors[1] == "URL 1: ntfy refused the notification (details withheld)"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in (TOPIC, HOOK_TOKEN, "xoxbSecretToken77"):
        assert secret not in seen
        assert secret not in logged
    with world.sessions() as session:
        [slack] = [c for c in service.list_channels(session, world.principal(session)) if c.id == hook]
    assert slack.config["url"] == f"{receiver.url}/…" and "url" in slack.secrets_set
