"""The notification worker inside a server process (roles `all` and `worker`; several processes may
run it at once: each delivery is claimed by one). `python -m edgefleet.server.notify` runs it alone."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from edgefleet.server.context import ServerContext
from edgefleet.server.db import faults
from edgefleet.server.health import Health
from edgefleet.server.notify.worker import NotifyWorker

log = logging.getLogger(__name__)


@dataclass
class Notifier:
    worker: NotifyWorker
    task: "asyncio.Task[None]"


async def _run(worker: NotifyWorker, interval_s: float, health: Health) -> None:
    errors = faults.ErrorLog(log, every_s=60.0)
    while True:
        await asyncio.sleep(interval_s)
        if not health.schema_ready:
            continue
        try:
            await asyncio.to_thread(worker.tick)
        except Exception as err:  # the loop outlives a database outage or a bug in one pass
            diagnosis = faults.diagnose(err)
            if diagnosis.retry:
                errors(diagnosis.kind, "notification pass failed: %s; retrying", diagnosis.detail)
            else:
                errors(diagnosis.kind, "notification pass failed", level=logging.ERROR, exc_info=True)


def start(context: ServerContext, health: Health) -> Notifier | None:
    settings = context.settings
    if not settings.notify_worker or settings.role not in ("all", "worker"):
        return None
    worker = NotifyWorker(context.sessions, settings)
    return Notifier(worker, asyncio.create_task(_run(worker, settings.notify_interval_s, health)))


async def stop(notifier: Notifier | None) -> None:
    if notifier is None:
        return
    notifier.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await notifier.task
    await asyncio.to_thread(notifier.worker.close)
