"""The real-time hub across processes: one Redis stream carries every message to every API process.

Whoever publishes (an ingest worker's writer thread, the worker's loops, an API request) appends to
the stream with a Lua script that takes the next integer cursor from a counter and adds the entry
under that id (`XADD ... MAXLEN ~ STREAM_BUFFER`), so cursors stay the integers clients already
know, increase across all publishers, and survive a restart of any server process. Each API process
reads the stream once (`XREAD BLOCK`) and hands each entry to its own WebSocket subscribers: a client
on any replica gets every message of its organization once. The stream is the resume buffer: a client
that reconnects to any replica with `?cursor=N` is sent what came after N (`XRANGE`), then the live
messages, in order and without repeats (a high-water mark per subscription drops what the replay and
the live reader both hand over); a cursor that is no longer in the stream gets `reset`.

When Redis cannot be reached, publishing drops the live message (the data is in the database; the
log says so once a minute) and the reader retries every second, continuing from its last entry. When
Redis comes back empty (or the keys were deleted), cursors restart from 1: after an idle read or an
error the reader compares the newest cursor with its own, and if it is below, reads the new stream from
its start and sends every subscriber `reset` (cursor 0: reload through the REST API).
"""

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edgefleet.server.db.faults import ErrorLog
from edgefleet.server.hub import StreamItem, Subscription

log = logging.getLogger(__name__)
READ_BLOCK_MS = 1000
READ_COUNT = 1000
REPLAY_PAGE = 1000
RETRY_S = 1.0
# KEYS: stream, counter. ARGV: maxlen, payload... Returns the last cursor used. A counter lost while
# the stream was kept (Redis restored from an older snapshot) continues after the stream's last id.
PUBLISH_LUA = """
local n = #ARGV - 1
local last = redis.call('INCRBY', KEYS[2], n)
if last == n then
  local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #tail > 0 then
    local newest = tonumber(string.match(tail[1][1], '^(%d+)'))
    if newest >= 1 then
      last = redis.call('INCRBY', KEYS[2], newest)
    end
  end
end
for i = 1, n do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], (last - n + i) .. '-0', 'm', ARGV[i + 1])
end
return last
"""


def _cursor(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _item(entry_id: bytes | str, fields: dict[Any, Any]) -> StreamItem:
    message = orjson.loads(fields.get(b"m") or fields["m"])
    return StreamItem(_cursor(entry_id), int(message["o"]), str(message["t"]), message["d"])


class RedisHub:
    """`Hub`'s interface (publish, publish_many, subscribe, unsubscribe, bind) over a Redis stream."""

    def __init__(self, url: str, prefix: str = "edgefleet", buffer: int = 10_000) -> None:
        self._url = url
        self.stream_key = f"{prefix}:stream"
        self.counter_key = f"{prefix}:stream:cursor"
        self._buffer = buffer
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._publish_script = self._redis.register_script(PUBLISH_LUA)
        self._subscribers: set[Subscription] = set()
        self._replaying: dict[Subscription, list[StreamItem]] = {}
        self._sent: dict[Subscription, int] = {}
        """The last cursor queued to each subscription: its high-water mark."""
        self._epoch = 0
        """Raised when the stream restarted below our cursor: a replay begun before it is stale."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._aio: aioredis.Redis | None = None
        self._errors = ErrorLog(log, every_s=60.0)
        self.cursor = 0
        """The last cursor this process has read from the stream."""

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    # --- publishing (any thread) ------------------------------------------------------------------
    def publish(self, org_id: int, type_: str, data: dict[str, Any]) -> None:
        self.publish_many([(org_id, type_, data)])

    def publish_many(self, items: list[tuple[int, str, dict[str, Any]]]) -> None:
        if not items:
            return
        payloads = [orjson.dumps({"o": o, "t": t, "d": d}, default=str) for o, t, d in items]
        try:
            self._publish_script(keys=[self.stream_key, self.counter_key], args=[self._buffer, *payloads])
        except RedisError as err:
            self._errors(
                "redis", "the live stream cannot reach Redis (%s); %d messages not streamed", err, len(items)
            )

    # --- reading (the event loop of an API process) -----------------------------------------------
    async def start_reading(self) -> None:
        """Read the stream from now on and deliver to this process's subscribers."""
        self._aio = aioredis.Redis.from_url(self._url, socket_connect_timeout=2)
        try:
            self.cursor = await self._newest()
        except RedisError as err:
            self._errors("redis", "the live stream cannot reach Redis at start (%s); retrying", err)
        self._reader = asyncio.create_task(self._read())

    async def stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._aio is not None:
            await self._aio.aclose()
            self._aio = None
        self._redis.close()

    async def _read(self) -> None:
        assert self._aio is not None
        check_restart = False
        while True:
            try:
                if check_restart:
                    await self._follow_restart()
                answer = await self._aio.xread(
                    {self.stream_key: f"{self.cursor}-0"}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except RedisError as err:
                self._errors("redis", "reading the live stream from Redis failed (%s); retrying", err)
                await asyncio.sleep(RETRY_S)
                check_restart = True
                continue
            check_restart = not answer  # idle, or Redis restarted empty: ids now below our cursor
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    item = _item(entry_id, fields)
                    self.cursor = item.cursor
                    self._deliver(item)

    async def _newest(self) -> int:
        """The last cursor handed out: the counter, or the stream's newest entry when the counter was
        lost and the stream kept (the publish script continues after that entry)."""
        assert self._aio is not None
        counter = int(await self._aio.get(self.counter_key) or 0)
        tail = await self._aio.xrevrange(self.stream_key, "+", "-", count=1)
        return max(counter, _cursor(tail[0][0]) if tail else 0)

    async def _follow_restart(self) -> None:
        """Redis came back empty (or the keys were deleted): cursors restart from 1. Read the new
        stream from its start and tell every subscriber to reload (`reset`)."""
        if await self._newest() >= self.cursor:
            return
        log.warning("the live stream restarted below cursor %d; subscribers reload", self.cursor)
        self.cursor = 0
        self._epoch += 1
        for sub in list(self._subscribers):
            reset = StreamItem(0, sub.org_id, "reset", {"reason": "stream restarted"})
            held = self._replaying.get(sub)
            if held is not None:
                held.append(reset)
            else:
                self._put(sub, reset)

    def _deliver(self, item: StreamItem) -> None:
        for sub in [s for s in self._subscribers if s.org_id == item.org_id]:
            held = self._replaying.get(sub)
            if held is not None:
                held.append(item)
            else:
                self._put(sub, item)

    def _put(self, sub: Subscription, item: StreamItem) -> None:
        """Queue `item` unless the subscriber already has it: each subscription gets cursors in
        increasing order, once (a replay and the live reader overlap); a `reset` starts over."""
        if item.type != "reset" and item.cursor <= self._sent.get(sub, 0):
            return
        self._sent[sub] = item.cursor
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            sub.overflowed = True
            log.warning("stream subscriber of org %s fell behind; disconnecting it", sub.org_id)
            self.unsubscribe(sub)

    def subscribe(self, org_id: int, cursor: int | None = None) -> Subscription:
        """Live messages from now; with `cursor`, first what came after it (on the event loop)."""
        sub = Subscription(org_id)
        self._subscribers.add(sub)
        if cursor is not None:
            self._sent[sub] = cursor
            self._replaying[sub] = []
            asyncio.get_running_loop().create_task(self._replay(sub, cursor))
        return sub

    async def _replay(self, sub: Subscription, cursor: int) -> None:
        epoch = self._epoch
        replayed: list[StreamItem] = []
        try:
            replayed = await self._missed(sub.org_id, cursor)
        except RedisError as err:
            log.warning("cannot replay the live stream from Redis (%s); the client reloads", err)
            replayed = [StreamItem(self.cursor, sub.org_id, "reset", {"reason": "stream unavailable"})]
        held = self._replaying.pop(sub, [])
        if sub not in self._subscribers:
            return
        if epoch != self._epoch:  # the stream restarted meanwhile: `held` starts with its reset
            replayed = []
        for item in replayed + held:  # `_put` drops what the replay already covered
            self._put(sub, item)

    async def _missed(self, org_id: int, cursor: int) -> list[StreamItem]:
        """What came after `cursor`, paged up to the head (approximate trimming keeps more than
        `buffer` entries); `reset` when the stream no longer holds all of it."""
        assert self._aio is not None, "start_reading first"
        newest = await self._newest()
        oldest = await self._aio.xrange(self.stream_key, "-", "+", count=1)
        first = _cursor(oldest[0][0]) if oldest else newest + 1
        unknown = StreamItem(newest, org_id, "reset", {"reason": "cursor unknown"})
        if cursor > newest or (cursor < first - 1 and cursor < newest):
            return [unknown]
        items: list[StreamItem] = []
        start = cursor + 1
        while True:
            entries = await self._aio.xrange(self.stream_key, f"{start}-0", "+", count=REPLAY_PAGE)
            if entries and _cursor(entries[0][0]) > start:  # trimmed while we paged: a gap
                return [unknown]
            items += [_item(entry_id, fields) for entry_id, fields in entries]
            if len(entries) < REPLAY_PAGE:
                return [item for item in items if item.org_id == org_id]
            start = items[-1].cursor + 1

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._replaying.pop(sub, None)
        self._sent.pop(sub, None)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
