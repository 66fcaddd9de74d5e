"""Rate limits for sign-in and sign-up, on `limits` (moving windows, atomic per key).

Storage: Redis when `EDGEFLEET_RATELIMIT_URL` names one (`redis://host:6379/0`), shared by every
server process; otherwise in this process's memory, capped at `RATELIMIT_MEMORY_MAX_KEYS` keys (the
keys nearest to expiry go first when a flood of new keys would exceed it).

The policy slows a password guesser down without handing them a way to lock the owner out:

- **account + address** (`LOGIN_LIMITS`, default 5 per 5 minutes, 20 per hour, 100 per day): every
  attempt takes a slot *before* the password is checked, atomically, so concurrent requests cannot
  check more passwords than the limit allows. A successful sign-in clears it. The stacked windows are
  the backoff: 5 guesses, then a wait, and fewer per hour and day.
- **address** (`LOGIN_LIMITS_PER_ADDRESS`): failed attempts from one address over all accounts
  (password spraying); an address that reached it is refused before the password is checked.
- **account** (`LOGIN_LIMITS_PER_ACCOUNT`): attempts on one account from addresses that have never
  signed in to it (a guesser spread over many addresses). An address the account signed in from in the
  last 30 days does not count and is never refused by it, so the owner keeps signing in from there
  while someone else hammers the account.
- **sign-up** (`SIGNUP_LIMITS`): per address.

Client addresses come from `deps.client_address` (`X-Forwarded-For` only from `TRUSTED_PROXIES`); IPv6
addresses count per /64, the block one host usually holds.
"""

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from limits import RateLimitItem, RateLimitItemPerDay, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from edgefleet.server.errors import RateLimitedError, ServerError

log = logging.getLogger(__name__)
KNOWN_ADDRESS = RateLimitItemPerDay(1, 30)
"""Marks an address the account signed in from; it lasts 30 days from that sign-in."""
T = TypeVar("T")


class LimiterUnavailableError(ServerError):
    """The limiter's shared storage (Redis) cannot be reached: sign-in is refused, not unlimited."""


class BoundedMemoryStorage(MemoryStorage):
    """`limits`' memory storage with a cap on its keys, and its expiry sweep at most once a second
    (the stock one walks every key every 10 ms while requests come in)."""

    SWEEP_INTERVAL_S = 1.0

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys
        self._trim_lock = threading.Lock()
        self._warned_at = -float("inf")

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the base class's private name)
        if not self.timer.is_alive():
            sweep = getattr(self, "_MemoryStorage__expire_events")  # noqa: B009 (the base's private name)
            self.timer = threading.Timer(self.SWEEP_INTERVAL_S, sweep)
            self.timer.daemon = True
            self.timer.start()

    def key_count(self) -> int:
        return len(self.events) + len(self.expirations)

    def _trim(self) -> None:
        if self.key_count() < self.max_keys:
            return
        with self._trim_lock:
            if self.key_count() < self.max_keys:
                return
            # Fewest entries first (one attempt from a passing address: what a flood of new keys is
            # made of), then nearest to expiry. A key at its limit holds a refusal: it goes last.
            now = time.time()
            keys = [(len(e), e[0].expiry if e else now, k) for k, e in list(self.events.items())]
            keys += [(self.storage.get(k, 0), expiry, k) for k, expiry in list(self.expirations.items())]
            keys.sort()
            drop = len(keys) - self.max_keys + max(1, self.max_keys // 10)  # room for a while
            for _, _, key in keys[:drop]:
                with self.locks[key]:  # the expiry sweep works on a key under its lock
                    self.clear(key)
            if now - self._warned_at >= 60:  # a flood: say so once a minute, not per trim
                self._warned_at = now
                log.warning("rate limiter: %d keys in memory, dropping the least used", len(keys))

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if key not in self.events:
            self._trim()
        return bool(super().acquire_entry(key, limit, expiry, amount))


def _items(spec: str) -> list[RateLimitItem]:
    return parse_many(spec)


def normalize_address(address: str) -> str:
    """IPv6 addresses count per /64; anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _account(account: str) -> str:
    """A digest, so neither Redis nor a memory dump lists who tried to sign in."""
    return hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]


class LoginRateLimiter:
    """Sign-in and sign-up limits (see the module docstring). `check` before a password is checked,
    `failed` after a wrong one, `succeeded` after a right one; `sign_up` before an organization is made."""

    def __init__(
        self,
        login: str = "5/5 minutes;20/hour;100/day",
        per_address: str = "20/5 minutes;200/day",
        per_account: str = "20/5 minutes;200/day",
        signup: str = "10/hour;50/day",
        *,
        storage_url: str | None = None,
        prefix: str = "edgefleet",
        memory_max_keys: int = 100_000,
    ) -> None:
        self._login, self._per_address = _items(login), _items(per_address)
        self._per_account, self._signup = _items(per_account), _items(signup)
        self.storage: Storage
        if storage_url:
            storage = storage_from_string(storage_url, key_prefix=prefix, wrap_exceptions=True)
            if not isinstance(storage, Storage):
                raise ValueError(f"{storage_url!r} names an asyncio storage; use redis://")
            self.storage = storage
        else:
            self.storage = BoundedMemoryStorage(memory_max_keys)
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._prefix = prefix

    def _call(self, action: Callable[..., T], *args: Any) -> T:
        try:
            return action(*args)
        except StorageError as err:
            log.error("the rate limiter's storage is unavailable: %s", err)
            raise LimiterUnavailableError(
                "sign-in is unavailable for a moment (the rate limiter's storage cannot be reached)"
            ) from err

    def _refuse(self, item: RateLimitItem, ids: tuple[str, ...], what: str) -> RateLimitedError:
        stats = self._call(self._limiter.get_window_stats, item, *ids)
        retry = max(1.0, stats.reset_time - time.time())
        return RateLimitedError(f"too many {what}; try again in {retry:.0f} s", retry)

    def _ids(self, *parts: str) -> tuple[str, ...]:
        return (self._prefix, *parts)

    def check(self, account: str, address: str) -> None:
        """Take one sign-in attempt for `account` from `address`, or raise RateLimitedError (nothing is
        checked then). Atomic: N concurrent requests get at most the limit's number of attempts."""
        who, where = _account(account), normalize_address(address)
        by_address = self._ids("login-address", where)
        for item in self._per_address:
            if not self._call(self._limiter.test, item, *by_address):
                raise self._refuse(item, by_address, "failed sign-ins from your address")
        pair = self._ids("login", who, where)
        for item in self._login:
            if not self._call(self._limiter.hit, item, *pair):
                raise self._refuse(item, pair, "sign-in attempts for this account")
        if self._known(who, where):
            return
        by_account = self._ids("login-account", who)
        for item in self._per_account:
            if not self._call(self._limiter.hit, item, *by_account):
                raise self._refuse(item, by_account, "sign-in attempts for this account")

    def _known(self, who: str, where: str) -> bool:
        ids = self._ids("login-known", who, where)
        return not self._call(self._limiter.test, KNOWN_ADDRESS, *ids)

    def failed(self, account: str, address: str) -> None:
        """A wrong password (or a disabled account): counts against the address."""
        del account
        by_address = self._ids("login-address", normalize_address(address))
        for item in self._per_address:
            self._call(self._limiter.hit, item, *by_address)

    def succeeded(self, account: str, address: str | None = None) -> None:
        """The right password: the account's attempts from this address start over, and the address
        is known to the account for 30 days (the account-wide limit no longer applies to it)."""
        if address is None:
            return
        who, where = _account(account), normalize_address(address)
        pair = self._ids("login", who, where)
        for item in self._login:
            self._call(self._limiter.clear, item, *pair)
        known = self._ids("login-known", who, where)
        if not self._known(who, where):
            self._call(self._limiter.hit, KNOWN_ADDRESS, *known)

    def sign_up(self, address: str) -> None:
        """Take one sign-up from `address`, or raise RateLimitedError."""
        ids = self._ids("signup", normalize_address(address))
        for item in self._signup:
            if not self._call(self._limiter.hit, item, *ids):
                raise self._refuse(item, ids, "sign-ups from your address")

    def stats(self) -> dict[str, Any]:
        """What the in-memory storage holds (for tests and diagnostics)."""
        if isinstance(self.storage, BoundedMemoryStorage):
            return {"storage": "memory", "keys": self.storage.key_count(), "max_keys": self.storage.max_keys}
        return {"storage": type(self.storage).__name__}
