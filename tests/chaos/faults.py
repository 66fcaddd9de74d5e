"""The faults of the chaos suite: how each is injected and undone, and its recovery bounds.

The bounds follow from the settings (`ChaosOptions`): devices reconnect within `backoff_max_s` (2 s)
and publish again what is not acknowledged after `ack_timeout_s` (2 s, doubling to 8 s while nothing
is acknowledged); the ingest reconnects to its broker within 5 s (paho: 1 s doubling to 5 s); the
batch writer retries a database it cannot write at least every second; a server process serves
within about 2 s (budgeted: 8 s on a loaded CI machine); a fleet process within 1.5 s (5 s).

- broker: first stored once the ingest is subscribed again (<= 5 s + 1 s of margin: 8 s); backlog
  once the devices' next resend round after that has come (<= 5 + 8 s, plus margin: 16 s);
- server: its start-up plus a device reconnect (12 s); backlog after one more resend round (20 s);
- device process: its start-up (8 s), its whole outbox published on connect (10 s);
- database: one writer retry after it is back (5 s); the kept batch, then the queue (10 s);
- full disk: the devices' next step writes again (5 s).
"""

import signal
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from edgefleet.server.db import make_engine
from edgefleet.server.db.models import Alarm, EventRow, TelemetryRow
from tests.chaos.processes import fill
from tests.chaos.stack import DAY_S, Fault, Stack
from tests.server.tcp_proxy import TcpProxy
from tests.support.services import MosquittoBroker


def _broker(stack: Stack) -> MosquittoBroker:
    assert stack.broker is not None
    return stack.broker


def _read_only(stack: Stack) -> None:
    assert stack.database is not None
    name = stack.database.name
    stack.admin_sql(
        f'ALTER DATABASE "{name}" SET default_transaction_read_only = on',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


def _read_write(stack: Stack) -> None:
    """Back to read-write without terminating anything: the server must replace its sessions itself."""
    assert stack.database is not None
    stack.admin_sql(f'ALTER DATABASE "{stack.database.name}" RESET default_transaction_read_only')


def _fill_disk(stack: Stack) -> None:
    assert stack.disk is not None
    stack.filler = fill(stack.disk)


def _free_disk(stack: Stack) -> None:
    assert stack.filler is not None
    stack.filler.unlink()


def _proxy(stack: Stack) -> TcpProxy:
    assert stack.proxy is not None
    return stack.proxy


def _wait_for_alarm_cleared(stack: Stack) -> None:
    """Until the wrong-clock device's alarm cleared (or long past when it should have)."""
    device_id = stack.device_ids[0]
    deadline = time.monotonic() + stack.options.alarm_clear_after_s + 30
    engine = make_engine(stack.db_url)
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                cleared = connection.execute(
                    select(Alarm.id).where(Alarm.device_id == device_id, Alarm.cleared_at.is_not(None))
                ).first()
            if cleared is not None:
                return
            time.sleep(0.5)
    finally:
        engine.dispose()


def _nothing(stack: Stack) -> None:
    return None


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "broker-kill",
            "Mosquitto kill -9, restarted (shared subscriptions)",
            "postgres",
            "mosquitto",
            inject=lambda s: _broker(s).stop(signal.SIGKILL),
            restore=lambda s: s.start_broker(),
            recovery_bound_s=8.0,
            drain_bound_s=16.0,
        ),
        Fault(
            "broker-kill-unshared",
            "Mosquitto kill -9, restarted (INGEST_SHARED=false)",
            "postgres",
            "mosquitto",
            inject=lambda s: _broker(s).stop(signal.SIGKILL),
            restore=lambda s: s.start_broker(),
            recovery_bound_s=8.0,
            drain_bound_s=16.0,
            shared=False,
        ),
        Fault(
            "broker-restart",
            "Mosquitto clean stop (SIGTERM) and start (shared subscriptions)",
            "postgres",
            "mosquitto",
            inject=lambda s: _broker(s).stop(signal.SIGTERM),
            restore=lambda s: s.start_broker(),
            recovery_bound_s=8.0,
            drain_bound_s=16.0,
        ),
        Fault(
            "server-kill",
            "server kill -9 and restart (PostgreSQL, Mosquitto)",
            "postgres",
            "mosquitto",
            inject=lambda s: s.server.kill(),
            restore=lambda s: s.server.start(),
            recovery_bound_s=12.0,
            drain_bound_s=20.0,
        ),
        Fault(
            "server-kill-embedded",
            "server kill -9 and restart (SQLite, embedded broker: the demo's defaults)",
            "sqlite",
            "embedded",
            inject=lambda s: s.server.kill(),
            restore=lambda s: s.server.start(),
            recovery_bound_s=12.0,
            drain_bound_s=20.0,
        ),
        Fault(
            "device-kill",
            "fleet process kill -9 and restart (outboxes resent)",
            "sqlite",
            "mosquitto",
            inject=lambda s: s.fleet.kill(),
            restore=lambda s: s.fleet.start(),
            recovery_bound_s=8.0,
            drain_bound_s=10.0,
        ),
        Fault(
            "db-refused",
            "PostgreSQL refusing connections (a proxy of the test's own closed)",
            "postgres",
            "mosquitto",
            inject=lambda s: _proxy(s).stop(),
            restore=lambda s: _proxy(s).start(),
            recovery_bound_s=5.0,
            drain_bound_s=10.0,
            proxy=True,
        ),
        Fault(
            "db-read-only",
            "PostgreSQL read-only (default_transaction_read_only, backends terminated), then read-write",
            "postgres",
            "mosquitto",
            inject=_read_only,
            restore=_read_write,
            recovery_bound_s=5.0,
            drain_bound_s=10.0,
        ),
        Fault(
            "disk-full",
            "devices' outbox disk full (a tmpfs filled to ENOSPC), then freed",
            "sqlite",
            "embedded",
            inject=_fill_disk,
            restore=_free_disk,
            recovery_bound_s=5.0,
            drain_bound_s=10.0,
            disk=True,
        ),
        Fault(
            "wrong-clock",
            "a device synced 400 days behind: retention passes every second, its alarm raised and cleared",
            "postgres",
            "mosquitto",
            inject=_nothing,
            restore=_nothing,
            recovery_bound_s=None,
            drain_bound_s=None,
            hold=_wait_for_alarm_cleared,
            wrong_clock=True,
        ),
    )
}


def wrong_clock_figures(stack: Stack) -> dict[str, Any]:
    """The wrong-clock device: its alarm's timing by server time, its rows' time flags."""
    device_id = stack.device_ids[0]
    engine = make_engine(stack.db_url)
    try:
        with engine.connect() as connection:
            alarms = connection.execute(
                select(Alarm.kind, Alarm.opened_at, Alarm.normal_since, Alarm.cleared_at, Alarm.clear_reason)
                .where(Alarm.device_id == device_id)
                .order_by(Alarm.id)
            ).all()
            cleared_event = connection.execute(
                select(EventRow.received_at, EventRow.ts)
                .where(EventRow.device_id == device_id, EventRow.active.is_(False))
                .order_by(EventRow.seq)
            ).first()
            flags: dict[str, int] = {}
            synced: set[bool] = set()
            for table in (EventRow, TelemetryRow):
                for flag, clock_synced in connection.execute(
                    select(table.time_flag, table.clock_synced).where(table.device_id == device_id)
                ):
                    flags[str(flag)] = flags.get(str(flag), 0) + 1
                    synced.add(bool(clock_synced))
    finally:
        engine.dispose()
    figures: dict[str, Any] = {"alarms": len(alarms), "time_flags": flags, "clock_synced": sorted(synced)}
    if alarms:
        kind, opened_at, normal_since, cleared_at, reason = alarms[0]
        figures.update(
            alarm_kind=kind,
            alarm_opened_days_ago=round((datetime.now(UTC) - opened_at).total_seconds() / DAY_S, 1),
            clear_reason=reason,
            normal_since_days_ago=(
                round((datetime.now(UTC) - normal_since).total_seconds() / DAY_S, 1) if normal_since else None
            ),
        )
        if cleared_event is not None:
            received_at, ts = cleared_event
            figures["device_behind_days"] = round((received_at - ts).total_seconds() / DAY_S, 1)
            if cleared_at is not None:
                figures["cleared_after_normal_event_s"] = round((cleared_at - received_at).total_seconds(), 2)
    return figures


def wrong_clock_checks(figures: dict[str, Any], clear_after_s: float) -> list[str]:
    """Retention and alarm timing by server time: its rows kept (counted as lost otherwise), its alarm
    cleared `clear_after_s` of server time after the device said normal, its time flagged `past`."""
    out = []
    cleared = figures.get("cleared_after_normal_event_s")
    if cleared is None:
        out.append(f"its alarm did not clear by itself: {figures}")
    elif not clear_after_s - 0.1 <= cleared <= clear_after_s + 5:
        out.append(f"its alarm cleared {cleared} s after the normal event arrived, not {clear_after_s} s")
    if set(figures.get("time_flags", {})) != {"past"}:
        out.append(f"its rows are not all flagged past: {figures.get('time_flags')}")
    if figures.get("clock_synced") != [True]:
        out.append(f"clock_synced is not stored as sent (true): {figures.get('clock_synced')}")
    return out
