"""The sender in a process of its own, killed with SIGKILL while it sends.

1. Killed after the alarm committed and before its mail was accepted: the restarted worker sends it
   once its dead predecessor's claim lapsed, and the inbox holds exactly one mail for the transition.
2. Killed after the server kept a mail and before the worker recorded it: the restart sends it again
   (at least once), with the same Message-ID and notification id, so the receiver can tell.
The restart is a worker in the test process whose clock is set past the lease (no waiting).
"""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from edgefleet.contracts import utc_now
from edgefleet.server.notify.local_inbox import LocalInbox
from tests.server.conftest import INGEST_PASSWORD, SECRET
from tests.server.notify.conftest import World, smtp_config

LEASE_S = 30.0


@contextmanager
def worker_process(world: World, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "EDGEFLEET_DB_URL": world.url,
        "EDGEFLEET_BROKER": "none",
        "EDGEFLEET_SECRET_KEY": SECRET,
        "EDGEFLEET_INGEST_PASSWORD": INGEST_PASSWORD,
        "EDGEFLEET_NOTIFY_INTERVAL_S": "0.1",
        "EDGEFLEET_NOTIFY_SEND_TIMEOUT_S": "1",
        "EDGEFLEET_NOTIFY_LEASE_S": str(LEASE_S),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.server.notify"], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:  # a clean stop finishes the pass in progress
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Gate:
    """Blocks the SMTP server's hook once, until the test has killed the worker."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()
        self.used = False

    def __call__(self, *_args: object) -> None:
        if self.used:
            return
        self.used = True
        self.reached.set()
        self.release.wait(15)


def _kill_at(gate: Gate, process: subprocess.Popen[bytes], log: Path) -> None:
    assert gate.reached.wait(20), f"the worker never reached the mail server: {log.read_text()[-2000:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    gate.release.set()


def test_worker_killed_mid_send_delivers_once(world: World, inbox: LocalInbox, tmp_path: Path) -> None:
    world.rule(channel_ids=[world.channel("email", smtp_config(inbox))])
    log = tmp_path / "worker.log"
    after_lease = timedelta(seconds=LEASE_S + 0.1)
    restarted = world.worker()  # "the restart": a fresh worker, its clock past the dead one's lease

    # 1: killed between the alarm's commit and the mail's acceptance
    inbox.before_recipient = before = Gate()
    with worker_process(world, log) as first:
        alarm_id = world.open_alarm()
        _kill_at(before, first, log)
    assert first.returncode == -signal.SIGKILL
    assert inbox.messages == []
    [claimed] = world.deliveries()
    assert (claimed.status, claimed.attempts) == ("sending", 1)  # its claim outlived the worker
    assert restarted.run_once().sent == 0  # the lease still holds
    assert restarted.run_once(utc_now() + after_lease).sent == 1
    [opened] = inbox.wait_for(1, 5)
    assert "OPEN warning anomaly" in opened["Subject"]

    # 2: killed after the server kept the mail, before the worker heard (and recorded) it
    world.clear_alarm(alarm_id)
    inbox.before_reply = after = Gate()
    with worker_process(world, log) as second:
        _kill_at(after, second, log)
    assert len(inbox.messages) == 2
    assert restarted.run_once(utc_now() + after_lease).sent == 1
    mails = inbox.wait_for(3, 5)
    assert [(d.status, d.attempts) for d in world.deliveries()] == [("sent", 2), ("sent", 2)]
    assert mails[1]["Message-ID"] == mails[2]["Message-ID"]  # the same mail: receivers drop the copy
    assert mails[1]["X-Edgefleet-Notification-Id"] == mails[2]["X-Edgefleet-Notification-Id"]
    assert "CLEARED" in mails[2]["Subject"]
    assert len({m["X-Edgefleet-Notification-Id"] for m in mails}) == 2  # opened, cleared
    for _ in range(2):
        restarted.run_once(utc_now() + 2 * after_lease)
    assert len(inbox.messages) == 3
