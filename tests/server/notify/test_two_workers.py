"""Two workers sending at once to a slow receiver: every delivery arrives exactly once, because a
worker claims no more than it sends at once and renews each lease right before sending; and settings
whose lease could lapse during a send are refused."""

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefleet.server.db import transaction
from edgefleet.server.notify import service
from edgefleet.server.notify.channels.webhook import ID_HEADER
from tests.server.conftest import make_settings
from tests.server.notify.conftest import World
from tests.server.notify.receiver import http_receiver

DELIVERIES = 48
DELAY_S = 0.6
"""Below the send timeout (1 s), but 48 sends 8 at a time outlast a 2.5 s lease claimed all at once."""


def test_two_workers_and_a_slow_receiver_deliver_each_once(sqlite_world: World) -> None:
    world = sqlite_world
    with http_receiver(delay_s=DELAY_S) as receiver:
        channel_id = world.channel("webhook", {"url": f"{receiver.url}/hook"})
        with transaction(world.sessions) as session:
            for _ in range(DELIVERIES):  # one test notification (its own id) per call
                service.test_channel(session, world.principal(session), channel_id, world.settings.secret_key)
        workers = [world.worker(notify_send_timeout_s=1.0, notify_lease_s=2.5) for _ in range(2)]
        errors: list[BaseException] = []

        def run(worker_index: int) -> None:
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    workers[worker_index].run_once()
                    if all(d.status == "sent" for d in world.deliveries()):
                        return
                    time.sleep(0.05)
            except BaseException as err:  # surfaced below
                errors.append(err)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        ids = Counter(r.headers[ID_HEADER.lower()] for r in receiver.requests)
    assert errors == []
    assert len(ids) == DELIVERIES
    assert [n for n in ids.values() if n > 1] == []  # nothing sent twice
    assert {(d.status, d.attempts) for d in world.deliveries()} == {("sent", 1)}


@pytest.mark.parametrize(("timeout_s", "lease_s"), [(20.0, 40.0), (20.0, 30.0), (5.0, 1.0)])
def test_a_lease_that_could_lapse_mid_send_is_refused(
    tmp_path: Path, timeout_s: float, lease_s: float
) -> None:
    with pytest.raises(ValidationError, match="notify_lease_s"):
        make_settings(tmp_path, notify_send_timeout_s=timeout_s, notify_lease_s=lease_s)
    assert make_settings(tmp_path, notify_send_timeout_s=timeout_s, notify_lease_s=2 * timeout_s + 1)
