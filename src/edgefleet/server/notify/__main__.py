"""A notification worker in a process of its own: `python -m edgefleet.server.notify`.

Settings from the environment like the server's (`EDGEFLEET_DB_URL`, `EDGEFLEET_SECRET_KEY`,
`EDGEFLEET_PUBLIC_URL`, `EDGEFLEET_NOTIFY_*`); run the servers with `EDGEFLEET_NOTIFY_WORKER=false`
then, or leave it on: several workers share the work safely (each delivery is claimed by one).
The database must be migrated (the server does that at start).
"""

import logging
import signal
import threading

from edgefleet.server.db import faults, make_engine, make_sessionmaker
from edgefleet.server.notify.worker import NotifyWorker
from edgefleet.server.settings import ServerSettings

log = logging.getLogger("edgefleet.server.notify")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings()
    settings.require_safe()
    engine = make_engine(settings.db_url)
    worker = NotifyWorker(make_sessionmaker(engine), settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    errors = faults.ErrorLog(log, every_s=60.0)
    log.info("notification worker started (every %.1f s)", settings.notify_interval_s)
    while not stop.wait(settings.notify_interval_s):
        try:
            worker.tick()
        except Exception as err:  # the loop outlives a database outage or a bug in one pass
            diagnosis = faults.diagnose(err)
            level = logging.WARNING if diagnosis.retry else logging.ERROR
            errors(diagnosis.kind, "notification pass failed: %s", diagnosis.detail, level=level)
    worker.close()
    engine.dispose()


if __name__ == "__main__":
    main()
