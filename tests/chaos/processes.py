"""The processes of the chaos suite, each stopped by its own PID: the server (`edgefleet server`), the
fleet (`fleet_runner.py`), and a monitor that watches the server's database for stored messages.

Loopback only. Nothing here touches the machine's shared services beyond a database of its own.
"""

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from edgefleet.server.db import make_engine
from edgefleet.server.db.models import EventRow, TelemetryRow, WindowSampleRow
from tests.support.disk import CannotInjectError, fill, tmpfs
from tests.support.services import free_port

__all__ = ["CannotInjectError", "fill", "tmpfs"]  # the chaos faults take them from here

log = logging.getLogger("chaos")
RUNNER = Path(__file__).with_name("fleet_runner.py")
STORED_TABLES = (EventRow, TelemetryRow, WindowSampleRow)  # every channel a device keeps by (device_id, seq)
Key = tuple[str, int]


def _stop_process(process: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL: by this process's PID only."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _kill_process(process: subprocess.Popen[Any] | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()  # SIGKILL
        process.wait(10)


@dataclass
class ServerProcess:
    """`edgefleet server` in a subprocess; its log (every start appended) in `log_path`."""

    db_url: str
    broker: str  # `embedded` or an mqtt:// URL
    log_path: Path
    env: dict[str, str]
    metrics_token: str
    port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        command = [sys.executable, "-m", "edgefleet", "server", "--db", self.db_url, "--broker", self.broker]
        return [*command, "--port", str(self.port), "--mqtt-port", str(self.mqtt_port), "--no-dashboard"]

    def start(self) -> None:
        command = self.argv()
        with self.log_path.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.log_path.parent,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the server exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout} s: {self.log_tail()}")

    def kill(self) -> None:
        _kill_process(self.process)

    def stop(self) -> None:
        _stop_process(self.process)

    def metric(self, name: str) -> float | None:
        """A counter of this server process (since its last start), summed over labels."""
        try:
            response = httpx.get(
                self.url + "/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"}, timeout=5
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in response.text.splitlines()
            if line.startswith(name) and (line[len(name)] in " {")
        ]
        return sum(values) if values else None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]


@dataclass
class FleetProcess:
    """The fleet runner in a subprocess; `kill()` and `start()` again continue the same outboxes."""

    config: dict[str, Any]
    workdir: Path
    process: subprocess.Popen[str] | None = None
    starts: int = 0
    ready: list[dict[str, Any]] = field(default_factory=list)
    """The fleet's first line of each start (`outbox`: messages in its outboxes then)."""
    _lines: "queue.Queue[str | None]" = field(default_factory=queue.Queue)

    @property
    def record_path(self) -> Path:
        return Path(self.config["record"])

    @property
    def log_path(self) -> Path:
        return self.workdir / "fleet.log"

    def start(self, timeout: float = 60.0) -> None:
        config_path = self.workdir / "fleet.json"
        config_path.write_text(json.dumps(self.config), encoding="utf-8")
        self._lines = queue.Queue()
        with self.log_path.open("a", encoding="utf-8") as err:
            err.write(f"\n=== start {self.starts + 1} at {time.time():.3f}\n")
            err.flush()
            self.process = subprocess.Popen(
                [sys.executable, str(RUNNER), str(config_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        ready = self._next_json(timeout)
        if not ready.get("ready"):
            raise RuntimeError(f"the fleet did not start: {self.log_tail()}")
        self.ready.append(ready)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _next_json(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"no answer from the fleet within {timeout} s: {self.log_tail()}"
                ) from None
            if line is None:
                raise RuntimeError(f"the fleet exited: {self.log_tail()}")
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result

    def kill(self) -> None:
        _kill_process(self.process)

    def drain(self, timeout: float) -> dict[str, Any]:
        """Stop producing, wait (bounded) until every outbox is empty, close gracefully."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"drain {timeout}\n")
        self.process.stdin.flush()
        result = self._next_json(timeout + 30)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            _stop_process(self.process)
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()  # end of input: close the devices, no waiting
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                _stop_process(self.process)

    def log_tail(self, chars: int = 3000) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
            if self.log_path.exists()
            else ""
        )

    def records(self) -> dict[Key, tuple[str, float]]:
        """(device_id, seq) -> (kind, wall time it was stored in the outbox)."""
        out: dict[Key, tuple[str, float]] = {}
        if not self.record_path.exists():
            return out
        for line in self.record_path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 4:  # a line cut by kill -9 has fewer fields
                out[(parts[0], int(parts[1]))] = (parts[2], float(parts[3]))
        return out


class StoreMonitor:
    """Polls the server's database (directly, not through a fault) every `interval_s` for newly stored
    (device_id, seq) and stamps the wall time each was first seen: stored-at to within a poll."""

    LOOKBACK = 600  # ids below the last seen that are read again (a commit that came late)

    def __init__(self, url: str, interval_s: float = 0.25) -> None:
        self.engine: Engine = make_engine(url)
        self.interval_s = interval_s
        self.seen: dict[Key, float] = {}
        self._ids: dict[str, set[int]] = {t.__tablename__: set() for t in STORED_TABLES}
        self._last: dict[str, int] = dict.fromkeys(self._ids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval_s)

    def poll(self) -> None:
        now = time.time()
        try:
            with self.engine.connect() as connection:
                for table in STORED_TABLES:
                    name = table.__tablename__
                    rows = connection.execute(
                        select(table.id, table.device_id, table.seq).where(
                            table.id > self._last[name] - self.LOOKBACK
                        )
                    ).all()
                    ids = self._ids[name]
                    for row_id, device_id, seq in rows:
                        if row_id not in ids:
                            ids.add(row_id)
                            self.seen.setdefault((device_id, seq), now)
                            self._last[name] = max(self._last[name], row_id)
        except SQLAlchemyError:  # a database fault of the test: read again next time
            self.errors += 1
            self.engine.dispose()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def stored(self) -> dict[Key, int]:
        """Every stored (device_id, seq) with its number of rows, read in full."""
        out: dict[Key, int] = {}
        with self.engine.connect() as connection:
            for table in STORED_TABLES:
                query = select(table.device_id, table.seq, func.count()).group_by(table.device_id, table.seq)
                for device_id, seq, n in connection.execute(query):
                    out[(device_id, seq)] = out.get((device_id, seq), 0) + int(n)
        return out

    def close(self) -> None:
        self.engine.dispose()
