"""Device clock: UTC from SNTP with the device's offset, else a monotonic estimate marked unsynced."""

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class ClockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=lambda: ["pool.ntp.org"], description="host or host:port")
    timeout_s: float = Field(default=1.0, gt=0)
    resync_s: float = Field(default=3600.0, gt=0)
    enabled: bool = True


@dataclass
class DeviceClock:
    """`now()` is SNTP-corrected UTC when synced; otherwise boot time plus monotonic elapsed."""

    config: ClockConfig = field(default_factory=ClockConfig)
    synced: bool = False
    offset_s: float = 0.0
    _boot_wall: float = field(default_factory=time.time)
    _boot_mono: float = field(default_factory=time.monotonic)
    _last_sync_mono: float | None = None
    _next_attempt_mono: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self) -> bool:
        """Ask each server in turn; keep the first answer's offset. Never raises."""
        if not self.config.enabled:
            return False
        import ntplib

        self._next_attempt_mono = time.monotonic() + self.config.resync_s
        client = ntplib.NTPClient()
        for server in self.config.servers:
            host, _, port = server.partition(":")
            try:
                response = client.request(
                    host, version=3, port=int(port) if port else "ntp", timeout=self.config.timeout_s
                )
            except (ntplib.NTPException, OSError, ValueError) as err:
                log.debug("SNTP %s did not answer: %s", server, err)
                continue
            with self._lock:
                self.offset_s = float(response.offset)
                self.synced = True
                self._last_sync_mono = time.monotonic()
            log.info("clock synced from %s, offset %.3f s", server, self.offset_s)
            return True
        with self._lock:
            if self._last_sync_mono is None:
                self.synced = False
        log.warning(
            "no SNTP server answered (%s); timestamps are marked unsynced", ", ".join(self.config.servers)
        )
        return False

    def maybe_resync(self) -> bool:
        """Sync again when the resync period has passed since the last attempt."""
        now = time.monotonic()
        if not self.config.enabled or now < self._next_attempt_mono:
            return False
        self._next_attempt_mono = now + self.config.resync_s
        return self.sync()

    def timestamp(self) -> float:
        with self._lock:
            if self.synced:
                return time.time() + self.offset_s
        return self._boot_wall + (time.monotonic() - self._boot_mono)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def uptime_s(self) -> float:
        return time.monotonic() - self._boot_mono
