"""A durable outbox per device (SQLite, WAL): every message is stored with its seq before it is sent.

- `next_seq` is persisted in the same transaction as the message, so seq continues after a restart.
- A message is removed only when it is confirmed: by the server's end-to-end `ack` (`ack_ranges`,
  one transaction however many seqs), or by the broker's PUBACK with `delivery: broker` (`ack`).
- Bounded: when full, the oldest sampled window (`sample`, for retraining) is dropped first, then
  the oldest telemetry; events are dropped (oldest first) only when nothing but events is left.
  Every drop is counted by kind and reason, and the counts are persisted.
- Storage errors (disk full, read-only, I/O error) never escape once the outbox is open: a message
  that cannot be stored is lost and counted (`dropped`, reason `write_error`), every failed
  operation is counted (`errors`), logged at most once per `error_log_interval_s`, and the counts are
  written when the disk takes writes again. Acknowledgements that cannot be deleted are kept in
  memory (never resent) and deleted with the next write that succeeds.
"""

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from edgefleet.edge.errors import OutboxError

log = logging.getLogger(__name__)

Kind = Literal["event", "telemetry", "ota_state", "sample"]
DropReason = Literal["full", "write_error"]
# Lower priority is dropped first.
_PRIORITY: Final[dict[str, int]] = {"sample": -1, "telemetry": 0, "ota_state": 1, "event": 2}
_STORAGE_ERRORS: Final = (sqlite3.Error, OSError)
_ERRORS_KEY: Final = "errors"
_NOTHING: Final[tuple[Counter[str], int]] = (Counter(), 0)  # nothing unsaved was written

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_priority ON messages (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _drop_key(kind: str, reason: DropReason) -> str:
    # `dropped_<kind>` (reason full) is the key older outbox files already hold
    return f"dropped_{kind}" if reason == "full" else f"dropped_{kind}@{reason}"


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    kind: str
    payload: bytes


class _ErrorLog:
    """Storage errors at WARNING: the first at once, then one summary per interval, and recovery."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s
        self.failing = False
        self._since_log = 0
        self._in_episode = 0
        self._last_log = -float("inf")
        self._last_error = ""

    def failed(self, what: str, err: BaseException) -> None:
        self._in_episode += 1
        self._since_log += 1
        self._last_error = f"{what}: {err}"
        now = time.monotonic()
        if not self.failing or now - self._last_log >= self.interval_s:
            if self.failing:
                log.warning(
                    "outbox %s: %d more storage errors in %.0f s (last: %s)",
                    self.path,
                    self._since_log,
                    now - self._last_log,
                    self._last_error,
                )
            else:
                log.warning(
                    "outbox %s: storage error, %s; messages that cannot be stored are lost and counted",
                    self.path,
                    self._last_error,
                )
            self._since_log = 0
            self._last_log = now
        self.failing = True

    def recovered(self) -> None:
        if self.failing:
            log.warning("outbox %s: writable again after %d storage errors", self.path, self._in_episode)
        self.failing = False
        self._in_episode = self._since_log = 0


class Outbox:
    """Thread-safe; one connection guarded by a lock (the device thread and the MQTT thread share it)."""

    def __init__(self, path: Path, max_messages: int = 10_000, *, error_log_interval_s: float = 30.0) -> None:
        if max_messages < 1:
            raise OutboxError("outbox max_messages must be >= 1")
        self.path = path
        self.max_messages = max_messages
        self._lock = threading.RLock()  # re-entrant: a payload builder may read the depth
        self._errlog = _ErrorLog(path, error_log_interval_s)
        # counters (meta keys) not yet persisted, and acknowledged ranges not yet deleted: what a
        # failing disk could not take; written by the next transaction that succeeds
        self._unsaved: Counter[str] = Counter()
        self._unsaved_acks: list[tuple[int, int]] = []
        self._staged: dict[str, int] = {}  # counters written in the open transaction
        self._depth = 0  # the last depth read, reported while reads fail
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._next_seq = self._meta("next_seq")
            counters = "SELECT key, value FROM meta WHERE key LIKE 'dropped_%' OR key = ?"
            self._saved: dict[str, int] = dict(self._db.execute(counters, (_ERRORS_KEY,)).fetchall())
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"cannot open outbox {path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- helpers (under the lock) -------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _add_meta(self, key: str, n: int) -> None:
        value = self._meta(key) + n
        self._set_meta(key, value)
        self._staged[key] = value  # into `_saved` once committed

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db)

    def _write_unsaved(self) -> tuple[Counter[str], int]:
        """Inside a transaction: persist what earlier failed writes left in memory."""
        self._staged.clear()
        if not self._unsaved and not self._unsaved_acks:
            return _NOTHING
        counts = Counter(self._unsaved)
        for key, n in counts.items():
            self._add_meta(key, n)
        acks = len(self._unsaved_acks)
        if acks:
            self._db.executemany("DELETE FROM messages WHERE seq BETWEEN ? AND ?", self._unsaved_acks)
        return counts, acks

    def _committed(self, written: tuple[Counter[str], int]) -> None:
        """After a commit: the counters written are saved; forget what `_write_unsaved` persisted."""
        if self._staged:
            self._saved.update(self._staged)
            self._staged.clear()
        if written is not _NOTHING:
            counts, acks = written
            self._unsaved.subtract(counts)
            self._unsaved = +self._unsaved
            del self._unsaved_acks[:acks]
        if self._errlog.failing:
            self._errlog.recovered()

    def _failed(self, what: str, err: BaseException, lost: str | None = None) -> None:
        """After a storage error (the transaction, if any, rolled back): count it."""
        self._staged.clear()
        self._unsaved[_ERRORS_KEY] += 1
        if lost is not None:
            self._unsaved[_drop_key(lost, "write_error")] += 1
        self._errlog.failed(what, err)

    def _total(self, key: str) -> int:
        return self._saved.get(key, 0) + self._unsaved.get(key, 0)

    def _acked_unsaved(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self._unsaved_acks)

    # -- writing ---------------------------------------------------------------------------------

    def allocate_seq(self) -> int:
        """Reserve a seq for a message that is not stored (the retained status). Never fails: when
        the disk does not take the write, the seq is reserved in memory and persisted later."""
        with self._lock:
            try:
                with self._tx():
                    written = self._write_unsaved()
                    seq = max(self._meta("next_seq"), self._next_seq)
                    self._set_meta("next_seq", seq + 1)
                self._committed(written)
            except _STORAGE_ERRORS as err:
                seq = self._next_seq
                self._failed("allocate seq", err)
            self._next_seq = seq + 1
            return seq

    def peek_seq(self) -> int:
        with self._lock:
            try:
                return max(self._meta("next_seq"), self._next_seq)
            except _STORAGE_ERRORS as err:
                self._failed("read", err)
                return self._next_seq

    def put(self, topic: str, kind: Kind, build: Callable[[int], bytes]) -> int | None:
        """Allocate a seq, build the payload with it and store it in one transaction.

        Returns the seq, or None when the message was dropped (counted): the outbox is full of
        more important messages, or the disk did not take the write. An error of `build` itself
        propagates (nothing is stored).
        """
        with self._lock:
            written = _NOTHING
            try:
                with self._tx():
                    written = self._write_unsaved()
                    seq = max(self._meta("next_seq"), self._next_seq)
                    payload = build(seq)
                    self._make_room(kind)
                    self._db.execute(
                        "INSERT INTO messages (seq, topic, kind, priority, payload) VALUES (?, ?, ?, ?, ?)",
                        (seq, topic, kind, _PRIORITY[kind], payload),
                    )
                    self._set_meta("next_seq", seq + 1)
            except _DroppedError:
                self._committed(written)
                return None
            except _STORAGE_ERRORS as err:
                self._failed(f"{kind} not stored", err, lost=kind)
                return None
            self._committed(written)
            self._next_seq = seq + 1
            return seq

    def _make_room(self, kind: str) -> None:
        (depth,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        while depth >= self.max_messages:
            row = self._db.execute("SELECT seq, kind FROM messages ORDER BY priority, seq LIMIT 1").fetchone()
            if row is None or _PRIORITY[row[1]] > _PRIORITY[kind]:
                # full of more important messages: the newcomer is the one dropped
                self._add_meta(_drop_key(kind, "full"), 1)
                log.warning("outbox full (%d): dropped new %s", self.max_messages, kind)
                raise _DroppedError
            self._db.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
            self._add_meta(_drop_key(row[1], "full"), 1)
            log.warning("outbox full (%d): dropped %s seq %d", self.max_messages, row[1], row[0])
            depth -= 1

    def ack(self, seq: int) -> int:
        """Confirmed delivery of one seq: delete it. Returns how many messages were deleted."""
        return self.ack_ranges([(seq, seq)])

    def ack_ranges(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete every stored message in the inclusive seq ranges, in one transaction.

        Returns how many were deleted. When the disk does not take the delete, the ranges are
        kept in memory (`pending` leaves them out) and deleted with the next write that succeeds."""
        if not ranges:
            return 0
        with self._lock:
            try:
                with self._tx():
                    written = self._write_unsaved()
                    before = self._db.total_changes
                    self._db.executemany("DELETE FROM messages WHERE seq BETWEEN ? AND ?", ranges)
                    deleted = self._db.total_changes - before
                self._committed(written)
            except _STORAGE_ERRORS as err:
                self._unsaved_acks.extend(ranges)
                self._failed("ack not deleted", err)
                return 0
            return deleted

    # -- reading ---------------------------------------------------------------------------------

    def pending(self, after: int = -1, limit: int = 100) -> list[OutboxMessage]:
        """Stored, unacknowledged messages with seq > `after`, oldest first ([] while reads fail)."""
        out: list[OutboxMessage] = []
        with self._lock:
            try:
                while len(out) < limit:
                    rows = self._db.execute(
                        "SELECT seq, topic, kind, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after, limit - len(out)),
                    ).fetchall()
                    if not rows:
                        break
                    after = int(rows[-1][0])
                    out.extend(self._unacked(rows))
            except _STORAGE_ERRORS as err:
                self._failed("read", err)
        return out

    def get(self, seqs: Iterable[int]) -> list[OutboxMessage] | None:
        """The stored, unacknowledged messages among `seqs`, in seq order (for resending); None
        when the outbox cannot be read."""
        wanted = sorted(set(seqs))
        out: list[OutboxMessage] = []
        with self._lock:
            try:
                for i in range(0, len(wanted), 500):
                    chunk = wanted[i : i + 500]
                    rows = self._db.execute(
                        "SELECT seq, topic, kind, payload FROM messages WHERE seq IN "
                        f"({','.join('?' * len(chunk))}) ORDER BY seq",
                        chunk,
                    ).fetchall()
                    out.extend(self._unacked(rows))
            except _STORAGE_ERRORS as err:
                self._failed("read", err)
                return None
        return out

    def _unacked(self, rows: list[Any]) -> list[OutboxMessage]:
        """Rows as messages, less those acknowledged while the disk could not delete them."""
        return [
            OutboxMessage(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]))
            for r in rows
            if not self._unsaved_acks or not self._acked_unsaved(int(r[0]))
        ]

    def depth(self, kind: Kind | None = None) -> int:
        """Stored messages, or those of one kind (the last known depth while reads fail)."""
        with self._lock:
            try:
                if kind is None:
                    (n,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
                    self._depth = int(n)
                else:
                    (n,) = self._db.execute(
                        "SELECT COUNT(*) FROM messages WHERE kind = ?", (kind,)
                    ).fetchone()
                return int(n)
            except _STORAGE_ERRORS as err:
                self._failed("read", err)
                return self._depth

    def dropped(self) -> dict[str, int]:
        """Messages dropped, by kind (every reason), since the outbox file was created."""
        out: Counter[str] = Counter()
        for (kind, _), n in self.drops().items():
            out[kind] += n
        return dict(out)

    def drops(self) -> dict[tuple[str, DropReason], int]:
        """Messages dropped by (kind, reason): `full` (the bound), `write_error` (the disk)."""
        with self._lock:
            keys = {k for k in (*self._saved, *self._unsaved) if k.startswith("dropped_")}
            out: dict[tuple[str, DropReason], int] = {}
            for key in sorted(keys):
                kind, _, reason = key.removeprefix("dropped_").partition("@")
                n = self._total(key)
                if n:
                    out[(kind, "write_error" if reason == "write_error" else "full")] = n
            return out

    @property
    def errors(self) -> int:
        """Storage operations that failed (writes, deletes, reads), since the file was created."""
        with self._lock:
            return self._total(_ERRORS_KEY)

    @property
    def failing(self) -> bool:
        """True from a storage error until the next write that succeeds."""
        return self._errlog.failing


class _DroppedError(Exception):
    """The new message itself was dropped (full of events, and it is telemetry)."""


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # commit a drop too, so that its count is kept; roll back on any other error
        if exc_type is None or exc_type is _DroppedError:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        # SQLite rolls a transaction back by itself on a full disk or an I/O error
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback failed", exc_info=True)
