"""What the server can do right now: the database and the MQTT ingest, for `/healthz` and `/readyz`.

The server starts and serves its API and dashboard while the database or the broker is down; this is
where it says so. `ok` when the database answers, is migrated and the ingest writes, and the ingest is
connected to its broker (or runs without one); `degraded` otherwise, with the reason per component.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from edgefleet.server.context import ServerContext
from edgefleet.server.db.faults import diagnose

if TYPE_CHECKING:  # the MQTT side (amqtt, paho) is imported when the app starts, not with it
    from edgefleet.server.cluster.leader import Leadership
    from edgefleet.server.runtime import MqttRuntime

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 2.0
CHECK_CACHE_S = 0.5
"""Answers within this long of the last database check reuse it (probes may poll hard)."""


@dataclass
class Health:
    """Filled in by the app's lifespan; read by the health endpoints."""

    context: ServerContext
    schema_ready: bool = False
    """The database was reached and migrated since the start."""
    database_error: str | None = None
    """Why the database is not ready (the last error of the start-up attempts)."""
    mqtt: "MqttRuntime | None" = None
    mqtt_error: str | None = None
    leadership: "Leadership | None" = None
    """The worker leadership (roles `worker` and `all`)."""
    _checked_at: float = -1e9
    _database: tuple[str, str | None] = ("unknown", None)
    _lock: asyncio.Lock | None = None
    _lock_loop: asyncio.AbstractEventLoop | None = None

    async def report(self) -> dict[str, Any]:
        database = await self._database_state()
        ingest = self._ingest_state()
        ok = database["status"] == "ok" and ingest["status"] in ("ok", "off")
        status = "ok" if ok else "degraded"
        report: dict[str, Any] = {"status": status, "database": database, "ingest": ingest}
        role = self.context.settings.role
        if role != "all":  # which process this is, and whether it leads the workers
            report["role"] = role
        if role == "worker" and self.leadership is not None:
            report["leader"] = self.leadership.is_leader
            report["term"] = self.leadership.term
        return report

    async def _database_state(self) -> dict[str, Any]:
        if not self.schema_ready:
            return {"status": "starting", "detail": self.database_error or "migrating"}
        status, detail = await self._check_database()
        failing = self.context.metrics.registry.get_sample_value("edgefleet_ingest_write_failing")
        if status == "ok" and failing:
            status, detail = "cannot_write", "the ingest retries a batch the database refuses (see the log)"
        return {"status": status, "detail": detail} if detail else {"status": status}

    async def _check_database(self) -> tuple[str, str | None]:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # an app may run on several loops (tests)
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:  # one check at a time, however many probes ask
            if time.monotonic() - self._checked_at >= CHECK_CACHE_S:
                try:
                    await asyncio.wait_for(asyncio.to_thread(self._select_one), CHECK_TIMEOUT_S)
                    self._database = ("ok", None)
                except TimeoutError:
                    self._database = ("unavailable", f"no answer within {CHECK_TIMEOUT_S:.0f} s")
                except Exception as err:
                    diagnosis = diagnose(err)
                    self._database = ("unavailable", f"{diagnosis.kind}: {diagnosis.detail}")
                self._checked_at = time.monotonic()
            return self._database

    def _select_one(self) -> None:
        with self.context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _ingest_state(self) -> dict[str, Any]:
        mode = self.context.settings.broker_mode
        if mode == "none":
            return {"status": "off"}
        runtime = self.mqtt
        url = runtime.broker_url if runtime is not None else None
        out: dict[str, Any] = {"broker": url or self.context.settings.broker}
        state = runtime.state if runtime is not None else "stopped"
        if state == "connected":
            out["status"] = "ok"
        elif state == "connecting":
            out["status"] = "connecting"
        elif not self.schema_ready:
            out["status"] = "waiting_for_database"
        else:
            out["status"] = "starting"
        worker = runtime.worker if runtime is not None else None
        error = self.mqtt_error or getattr(worker, "connect_error", None)
        if error and state != "connected":
            out["detail"] = error
        return out
