"""Real-time hub: fans out events, alarms and device changes to WebSocket clients of one organization.

Every message gets a process-wide, increasing cursor. The hub keeps the last `buffer` messages so a
client that reconnects with `?cursor=N` gets what it missed; when N is too old (or from an earlier
server process) it receives a `reset` message and should reload through the REST API.
"""

import asyncio
import contextlib
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
SUBSCRIBER_QUEUE = 10_000


@dataclass(frozen=True)
class StreamItem:
    cursor: int
    org_id: int
    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "type": self.type, "data": self.data}


@dataclass(eq=False)
class Subscription:
    org_id: int
    queue: asyncio.Queue[StreamItem | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: bool = False


class Hub:
    def __init__(self, buffer: int = 10_000) -> None:
        self._cursor = 0
        self._buffer: deque[StreamItem] = deque(maxlen=buffer)
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    @property
    def cursor(self) -> int:
        return self._cursor

    def publish(self, org_id: int, type_: str, data: dict[str, Any]) -> None:
        """Thread-safe: ingest threads call this; delivery happens on the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._deliver, org_id, type_, data)
                return
            except RuntimeError:  # loop closed between the check and the call
                pass
        self._deliver(org_id, type_, data)

    def publish_many(self, items: list[tuple[int, str, dict[str, Any]]]) -> None:
        """`publish` for a batch (org_id, type, data): one hop to the event loop for all of them."""
        loop = self._loop
        if items and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._deliver_many, items)
                return
            except RuntimeError:  # loop closed between the check and the call
                pass
        self._deliver_many(items)

    def _deliver_many(self, items: list[tuple[int, str, dict[str, Any]]]) -> None:
        for org_id, type_, data in items:
            self._deliver(org_id, type_, data)

    def _deliver(self, org_id: int, type_: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._cursor += 1
            item = StreamItem(self._cursor, org_id, type_, data)
            self._buffer.append(item)
            subscribers = [s for s in self._subscribers if s.org_id == org_id]
        for sub in subscribers:
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                sub.overflowed = True
                log.warning("stream subscriber of org %s fell behind; disconnecting it", org_id)
                self.unsubscribe(sub)

    def subscribe(self, org_id: int, cursor: int | None = None) -> Subscription:
        sub = Subscription(org_id)
        with self._lock:
            if cursor is not None:
                oldest = self._buffer[0].cursor if self._buffer else self._cursor + 1
                if cursor > self._cursor or cursor < oldest - 1:
                    sub.queue.put_nowait(
                        StreamItem(self._cursor, org_id, "reset", {"reason": "cursor unknown"})
                    )
                else:
                    for item in self._buffer:
                        if item.cursor > cursor and item.org_id == org_id:
                            sub.queue.put_nowait(item)
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
