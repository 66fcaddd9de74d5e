"""The `serial` source: a real device streaming CSV lines over UART (pyserial).

Each line is `ax,ay,az,gx,gy,gz` (the classic ESP32+MPU6050 logger), optionally preceded by the
device's time in milliseconds (`ms,ax,...`). A line that does not parse (truncated, binary noise,
wrong field count, not a number) becomes one malformed reading: NaN, counted, never a crash.
"""

import logging
import math

import numpy as np

from edgefleet.edge.errors import SourceError
from edgefleet.edge.sources.base import Chunk

log = logging.getLogger(__name__)
MAX_LINE = 256


class SerialSource:
    live = True  # the sensor sets the pace, not the device loop

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        sample_rate_hz: float = 200.0,
        axes: tuple[str, ...] = ("ax", "ay", "az", "gx", "gy", "gz"),
        timeout_s: float = 0.05,
    ) -> None:
        import serial

        self.axes = axes
        self.sample_rate_hz = sample_rate_hz
        self.malformed = 0
        self._n = 0
        self._pending = b""
        self._discarding = False
        try:
            self._port = serial.Serial(port, baudrate=baudrate, timeout=timeout_s)
        except (serial.SerialException, ValueError) as err:
            raise SourceError(f"cannot open serial port {port}: {err}") from err

    def parse_line(self, raw: bytes) -> tuple[float, list[float]] | None:
        """(device time in s or NaN, values) or None when the line is malformed."""
        if len(raw) > MAX_LINE:
            return None
        try:
            fields = raw.decode("ascii").strip().split(",")
            values = [float(f) for f in fields]
        except (UnicodeDecodeError, ValueError):
            return None
        n = len(self.axes)
        if len(values) == n + 1:
            return values[0] / 1000.0, values[1:]
        if len(values) == n:
            return math.nan, values
        return None

    def read(self, max_samples: int) -> Chunk | None:
        import serial

        try:
            data = self._port.read(max(1, self._port.in_waiting or 1))
        except serial.SerialException as err:
            raise SourceError(f"serial read failed: {err}") from err
        if self._discarding:  # inside an over-long line: drop it up to its newline
            end = data.find(b"\n")
            if end < 0:
                data = b""
            else:
                data, self._discarding = data[end + 1 :], False
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_LINE:  # a line of noise that never ends: one malformed reading
            lines.append(self._pending)
            self._pending = b""
            self._discarding = True
        rows: list[list[float]] = []
        times: list[float] = []
        for raw in lines[:max_samples] if len(lines) > max_samples else lines:
            if not raw.strip():
                continue
            parsed = self.parse_line(raw)
            t_nominal = self._n / self.sample_rate_hz
            self._n += 1
            if parsed is None:
                self.malformed += 1
                rows.append([math.nan] * len(self.axes))
                times.append(math.nan)
                continue
            device_t, values = parsed
            rows.append(values)
            times.append(t_nominal if math.isnan(device_t) else device_t)
        if len(lines) > max_samples:
            # keep what we could not return for the next call
            self._pending = b"\n".join(lines[max_samples:]) + b"\n" + self._pending
        samples = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.axes))
        return Chunk(samples, np.asarray(times, dtype=np.float64))

    def close(self) -> None:
        self._port.close()
