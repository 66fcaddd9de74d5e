"""Faults on the devices' side: their process killed, their outbox disk full, a wrong clock."""

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosResult

pytestmark = pytest.mark.slow


@pytest.mark.needs("mosquitto")
def test_device_process_kill_9(chaos: Callable[..., ChaosResult]) -> None:
    """The fleet process killed and started again: what its outboxes held is sent again (SQLite)."""
    result = chaos("device-kill")
    assert result.problems() == [], result.describe()
    assert result.fleet_starts == 2 and result.outbox_at_restart  # caught messages unacknowledged


def test_device_disk_full(chaos: Callable[..., ChaosResult]) -> None:
    """The outboxes' disk (a tmpfs; needs root) filled to ENOSPC, then freed. Issue 17 found the MQTT
    thread dying on the storage error (1,102 messages stuck forever). What could not be stored is
    dropped and counted (`write_error`), never published; everything stored is delivered."""
    result = chaos("disk-full")
    assert result.problems() == [], result.describe()
    assert result.outbox_errors > 0


@pytest.mark.needs("postgres", "mosquitto")
def test_device_clock_400_days_behind(chaos: Callable[..., ChaosResult]) -> None:
    """A device synced to a wrong time server. Issue 17 found retention deleting all it sent and its
    alarm clearing on the next pass: both ran on device time. Retention runs every second here; the
    device's alarm must clear `ALARM_CLEAR_AFTER_S` of server time after its normal event."""
    result = chaos("wrong-clock")
    assert result.problems() == [], result.describe()
    assert result.extra["alarm_opened_days_ago"] == pytest.approx(400, abs=1)  # device time, kept for display
