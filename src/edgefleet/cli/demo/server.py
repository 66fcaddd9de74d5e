"""The server (API, ingest, embedded broker, dashboard) under uvicorn, on a thread of this process.

uvicorn runs its own event loop on that thread; the main thread keeps the signals (uvicorn only
installs handlers on the main thread), so Ctrl-C stops the fleet first and the server last.
"""

import logging
import socket
import threading
import time
import traceback

import uvicorn
from fastapi import FastAPI

from edgefleet.cli.demo.options import DemoError
from edgefleet.server import ServerSettings
from edgefleet.server.context import ServerContext

log = logging.getLogger(__name__)


class _AmqttSubscriptionRace(logging.Filter):
    """amqtt 0.12 iterates its subscription table across an `await` (`Broker._run_broadcast`, and
    the retained-message replay for a connecting client), so a client subscribing meanwhile raises
    "dictionary changed size during iteration" there, which asyncio logs with a traceback. Either
    one broadcast misses the later (device command) subscriptions, the ingest's come first and are
    served, or one connecting client is dropped and reconnects. The demo staggers its connects to
    make it rare and logs what remains in one line. The fix belongs in amqtt (iterate a copy)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        known = (
            isinstance(exc, RuntimeError)
            and "dictionary changed size" in str(exc)
            and any("amqtt" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))
        )
        if known:
            log.info("amqtt: a subscription raced a broadcast or a connect (known amqtt issue)")
        return not known


_QUIET_AMQTT = _AmqttSubscriptionRace()


def build_app(settings: ServerSettings) -> FastAPI:
    """The one place the demo builds its app: the server with the dashboard mounted."""
    from edgefleet.dashboard import create_dashboard_app

    return create_dashboard_app(settings)


class DemoServer:
    def __init__(self, settings: ServerSettings, sock: socket.socket) -> None:
        self.app = build_app(settings)
        self.context: ServerContext = self.app.state.edgefleet
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_config=None,  # our Rich logging handler, set up by the CLI
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,  # open dashboard websockets do not hold Ctrl-C up
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="demo-server", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    def start(self, timeout_s: float = 60.0) -> None:
        """Start and wait for the app's startup (migrations, broker, ingest) to finish."""
        logging.getLogger("asyncio").addFilter(_QUIET_AMQTT)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise DemoError("the server did not start (the log above says why)")
            if time.monotonic() > deadline:
                self.stop()
                raise DemoError(f"the server did not start within {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 20.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("the server did not stop within %.0f s", timeout_s)
        self._socket.close()
        logging.getLogger("asyncio").removeFilter(_QUIET_AMQTT)
