"""The Redis stream hub's resume and restart edge cases: a resume racing live publishing, a resume
longer than one read, and Redis coming back empty under a connected reader."""

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
import redis

from edgefleet.server.cluster import redis_hub
from edgefleet.server.cluster.redis_hub import RedisHub
from edgefleet.server.hub import StreamItem, Subscription
from tests.support.services import REDIS_URL

pytestmark = pytest.mark.needs("redis")


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"edgefleet-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"{prefix}:stream", f"{prefix}:stream:cursor")
    client.close()


async def _started(prefix: str, buffer: int) -> RedisHub:
    hub = RedisHub(REDIS_URL, prefix, buffer=buffer)
    hub.bind(asyncio.get_running_loop())
    await hub.start_reading()
    return hub


async def _items(sub: Subscription, count: int) -> AsyncIterator[StreamItem]:
    for _ in range(count):
        item = await asyncio.wait_for(sub.queue.get(), 10)
        assert item is not None, "disconnected"
        yield item


def test_a_resume_racing_live_publishing_gets_every_message_once_in_order(prefix: str) -> None:
    """The replay reads up to the head while the reader is still behind: what the reader hands out
    afterwards must not reach the client a second time."""

    async def trial(hub: RedisHub, publisher: RedisHub) -> None:
        start = hub.cursor
        halfway = threading.Event()

        def publish() -> None:
            for n in range(200):
                publisher.publish(1, "event", {"n": n})
                if n == 60:
                    halfway.set()

        thread = threading.Thread(target=publish)
        thread.start()
        await asyncio.to_thread(halfway.wait, 10)
        resumed = hub.subscribe(1, cursor=start)  # a browser back, mid-burst
        got = [item async for item in _items(resumed, 200)]
        await asyncio.to_thread(thread.join, 10)
        await asyncio.sleep(0.3)  # whatever the reader still delivers must be a duplicate
        assert [i.data["n"] for i in got] == list(range(200))
        assert resumed.queue.empty()
        assert [i.cursor for i in got] == sorted({i.cursor for i in got})
        hub.unsubscribe(resumed)

    async def scenario() -> None:
        hub = await _started(prefix, buffer=10_000)
        publisher = RedisHub(REDIS_URL, prefix, buffer=10_000)
        try:
            for _ in range(10):
                await trial(hub, publisher)
                while hub.cursor < await asyncio.to_thread(_counter, prefix):
                    await asyncio.sleep(0.05)  # the reader caught up: the next trial starts clean
        finally:
            await hub.stop_reading()
            await publisher.stop_reading()  # closes its connection

    asyncio.run(scenario())


def _counter(prefix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(cast(bytes | None, client.get(f"{prefix}:stream:cursor")) or 0)
    finally:
        client.close()


def test_a_resume_longer_than_one_read_is_paged_to_the_head(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`MAXLEN ~` keeps more than `buffer` entries (how many depends on Redis's node sizes; here a
    publisher with a larger buffer stands for that): a resume gets all of them, over several pages."""
    monkeypatch.setattr(redis_hub, "REPLAY_PAGE", 16)

    async def scenario() -> None:
        hub = await _started(prefix, buffer=10)
        publisher = RedisHub(REDIS_URL, prefix, buffer=10_000)
        try:
            await asyncio.to_thread(publisher.publish_many, [(1, "event", {"n": n}) for n in range(300)])
            resumed = hub.subscribe(1, cursor=0)
            got = [item async for item in _items(resumed, 300)]
            assert [i.data["n"] for i in got] == list(range(300))
        finally:
            await hub.stop_reading()
            await publisher.stop_reading()  # closes its connection

    asyncio.run(scenario())


def test_redis_restarting_empty_resets_subscribers_and_the_stream_goes_on(prefix: str) -> None:
    """After the keys are gone, cursors restart from 1, below the reader's: without noticing, every
    API replica's live stream would stay silent until the counter caught up."""

    async def scenario() -> None:
        hub = await _started(prefix, buffer=100)
        try:
            live = hub.subscribe(1)
            await asyncio.to_thread(hub.publish_many, [(1, "event", {"n": n}) for n in range(20)])
            before = [item async for item in _items(live, 20)]
            assert before[-1].cursor == 20
            client = redis.Redis.from_url(REDIS_URL)
            client.delete(f"{prefix}:stream", f"{prefix}:stream:cursor")  # Redis back empty
            client.close()
            await asyncio.to_thread(hub.publish_many, [(1, "event", {"n": n}) for n in range(5)])
            reset = await asyncio.wait_for(live.queue.get(), 10)
            assert reset is not None and reset.type == "reset" and reset.cursor == 0
            after = [item async for item in _items(live, 5)]
            assert [(i.cursor, i.data["n"]) for i in after] == [(n + 1, n) for n in range(5)]
            hub.publish(1, "event", {"n": 5})  # and live again from there
            (latest,) = [item async for item in _items(live, 1)]
            assert (latest.cursor, latest.data["n"]) == (6, 5)
            resumed = hub.subscribe(1, cursor=3)  # a browser resuming with a cursor of the new stream
            assert [i.data["n"] async for i in _items(resumed, 3)] == [3, 4, 5]
        finally:
            await hub.stop_reading()

    asyncio.run(scenario())
