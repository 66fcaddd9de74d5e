"""The clock: a local SNTP responder for the synced path, an unreachable local port for the fallback."""

import socket
import threading
import time
from collections.abc import Iterator

import ntplib
import pytest

from edgefleet.edge.clock import ClockConfig, DeviceClock
from tests.support.services import free_port

OFFSET_S = 1234.5


@pytest.fixture
def sntp_server() -> Iterator[str]:
    """Answers SNTP requests with a clock that runs OFFSET_S ahead of ours."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(1024)
            except TimeoutError:
                continue
            request = ntplib.NTPPacket()
            request.from_data(data)
            now = time.time() + OFFSET_S
            reply = ntplib.NTPPacket(version=3, mode=4, tx_timestamp=ntplib.system_to_ntp_time(now))
            reply.stratum = 2
            reply.orig_timestamp = request.tx_timestamp
            reply.recv_timestamp = ntplib.system_to_ntp_time(now)
            sock.sendto(reply.to_data(), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def test_unreachable_server_falls_back_to_monotonic_and_marks_unsynced() -> None:
    clock = DeviceClock(ClockConfig(servers=[f"127.0.0.1:{free_port()}"], timeout_s=0.2))
    assert clock.sync() is False
    assert not clock.synced
    first = clock.timestamp()
    assert abs(first - time.time()) < 5  # boot wall time + monotonic elapsed
    time.sleep(0.01)
    assert clock.timestamp() > first


def test_sync_applies_the_servers_offset(sntp_server: str) -> None:
    clock = DeviceClock(ClockConfig(servers=[f"127.0.0.1:{free_port()}", sntp_server], timeout_s=0.5))
    assert clock.sync() is True
    assert clock.synced
    assert clock.offset_s == pytest.approx(OFFSET_S, abs=0.5)
    assert clock.timestamp() - time.time() == pytest.approx(OFFSET_S, abs=0.5)
    assert clock.now().tzinfo is not None


def test_resync_waits_for_its_period() -> None:
    clock = DeviceClock(ClockConfig(servers=[f"127.0.0.1:{free_port()}"], timeout_s=0.1, resync_s=3600))
    clock.sync()
    started = time.monotonic()
    assert clock.maybe_resync() is False
    assert time.monotonic() - started < 0.05  # did not ask again


def test_disabled_clock_never_asks() -> None:
    clock = DeviceClock(ClockConfig(enabled=False))
    assert clock.sync() is False and not clock.synced
