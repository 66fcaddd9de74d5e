"""A durable outbox per device (SQLite, WAL): every message is stored with its seq before it is sent.

- `next_seq` is persisted in the same transaction as the message, so seq continues after a restart.
- A message is removed only when the broker acknowledged it (`ack(seq)`).
- Bounded: when full, the oldest sampled window (`sample`, for retraining) is dropped first, then
  the oldest telemetry; events are dropped (oldest first) only when nothing but events is left.
  Every drop is counted, and the counts are persisted.
"""

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from edgefleet.edge.errors import OutboxError

log = logging.getLogger(__name__)

Kind = Literal["event", "telemetry", "ota_state", "sample"]
# Lower priority is dropped first.
_PRIORITY: Final[dict[str, int]] = {"sample": -1, "telemetry": 0, "ota_state": 1, "event": 2}

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


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    kind: str
    payload: bytes


class Outbox:
    """Thread-safe; one connection guarded by a lock (the device thread and the MQTT thread share it)."""

    def __init__(self, path: Path, max_messages: int = 10_000) -> None:
        if max_messages < 1:
            raise OutboxError("outbox max_messages must be >= 1")
        self.path = path
        self.max_messages = max_messages
        self._lock = threading.RLock()  # re-entrant: a payload builder may read the depth
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"cannot open outbox {path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def allocate_seq(self) -> int:
        """Reserve a seq for a message that is not stored (the retained status)."""
        with self._lock, self._tx():
            seq = self._meta("next_seq")
            self._set_meta("next_seq", seq + 1)
            return seq

    def peek_seq(self) -> int:
        with self._lock:
            return self._meta("next_seq")

    def put(self, topic: str, kind: Kind, build: Callable[[int], bytes]) -> int | None:
        """Allocate a seq, build the payload with it and store it in one transaction.

        Returns the seq, or None when the outbox is full of more important messages and this
        one was dropped (counted).
        """
        with self._lock:
            try:
                with self._tx():
                    seq = self._meta("next_seq")
                    payload = build(seq)
                    self._make_room(kind)
                    self._db.execute(
                        "INSERT INTO messages (seq, topic, kind, priority, payload) VALUES (?, ?, ?, ?, ?)",
                        (seq, topic, kind, _PRIORITY[kind], payload),
                    )
                    self._set_meta("next_seq", seq + 1)
                    return seq
            except _DroppedError:
                return None

    def _make_room(self, kind: str) -> None:
        (depth,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        while depth >= self.max_messages:
            row = self._db.execute("SELECT seq, kind FROM messages ORDER BY priority, seq LIMIT 1").fetchone()
            if row is None or _PRIORITY[row[1]] > _PRIORITY[kind]:
                # full of more important messages: the newcomer is the one dropped
                self._set_meta(f"dropped_{kind}", self._meta(f"dropped_{kind}") + 1)
                log.warning("outbox full (%d): dropped new %s", self.max_messages, kind)
                raise _DroppedError
            self._db.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
            self._set_meta(f"dropped_{row[1]}", self._meta(f"dropped_{row[1]}") + 1)
            log.warning("outbox full (%d): dropped %s seq %d", self.max_messages, row[1], row[0])
            depth -= 1

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db)

    def ack(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))

    def pending(self, after: int = -1, limit: int = 100) -> list[OutboxMessage]:
        """Stored messages with seq > `after`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, kind, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [OutboxMessage(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def depth(self, kind: Kind | None = None) -> int:
        """Stored messages, or those of one kind."""
        with self._lock:
            if kind is None:
                (n,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
            else:
                (n,) = self._db.execute("SELECT COUNT(*) FROM messages WHERE kind = ?", (kind,)).fetchone()
            return int(n)

    def dropped(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped_%'").fetchall()
        return {str(k).removeprefix("dropped_"): int(v) for k, v in rows}


class _DroppedError(Exception):
    """The new message itself was dropped (full of events, and it is telemetry)."""


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # commit a drop too, so that its count is kept; roll back on any other error
        self._db.execute("COMMIT" if exc_type is None or exc_type is _DroppedError else "ROLLBACK")
