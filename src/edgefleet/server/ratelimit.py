"""Login rate limit: failed attempts per account and per client address in a sliding window."""

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from edgefleet.server.errors import RateLimitedError


class LoginRateLimiter:
    """In-process limiter (one server process; several workers would each count their own)."""

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _keys(self, account: str, address: str) -> list[tuple[str, str]]:
        return [("account", account.lower()), ("address", address)]

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def check(self, account: str, address: str) -> None:
        """Raise RateLimitedError when either key has used up its attempts."""
        now = self._clock()
        with self._lock:
            for key in self._keys(account, address):
                failures = self._prune(key, now)
                if len(failures) >= self._limits[key[0]]:
                    retry = failures[0] + self._window - now
                    raise RateLimitedError(
                        f"too many failed logins for this {key[0]}; try again in {retry:.0f} s", retry
                    )

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(account, address):
                self._failures[key].append(now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(("account", account.lower()), None)
