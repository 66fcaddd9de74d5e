"""Leader election with fencing on PostgreSQL, and the Redis stream hub, in one process each (the
multi-process versions are in test_cluster.py)."""

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, text

from edgefleet.server.cluster.leader import NotLeaderError, PostgresLeadership
from edgefleet.server.cluster.redis_hub import RedisHub
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from tests.support.services import REDIS_URL, PostgresDatabase


@pytest.fixture
def engine() -> Iterator[Engine]:
    database = PostgresDatabase()
    database.create()
    engine = make_engine(database.url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        database.drop()


def _terminate_lock_session(engine: Engine) -> None:
    """What PostgreSQL does when the leader's process or host dies: its session ends, the lock goes."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
        )


@pytest.mark.needs("postgres")
def test_one_leader_then_takeover_and_the_deposed_leader_commits_nothing(engine: Engine) -> None:
    first, second = PostgresLeadership(engine), PostgresLeadership(engine)
    sessions = make_sessionmaker(engine)
    try:
        assert first.poll() and not second.poll()
        assert first.term == 1
        with transaction(sessions) as session:
            first.fence(session)  # the leader's pass may commit
        _terminate_lock_session(engine)
        assert second.poll() and second.term == 2  # takes over at its next poll
        with pytest.raises(NotLeaderError), transaction(sessions) as session:
            first.fence(session)  # not noticed yet by its own poll: fenced by the term
        assert not first.is_leader
        assert not first.poll()  # and it stays a standby while the other leads
        with transaction(sessions) as session:
            second.fence(session)
    finally:
        first.release()
        second.release()


@pytest.mark.needs("postgres")
def test_a_new_leader_waits_for_the_pass_of_the_old_one_in_flight(engine: Engine) -> None:
    """The term row is read FOR SHARE in the pass's transaction: the new leader's term raise waits for
    that pass to commit, so two passes never interleave."""
    first, second = PostgresLeadership(engine), PostgresLeadership(engine)
    sessions = make_sessionmaker(engine)
    try:
        assert first.poll()
        took_over = threading.Event()
        with transaction(sessions) as session:
            first.fence(session)
            _terminate_lock_session(engine)

            def take_over() -> None:
                if second.poll():
                    took_over.set()

            thread = threading.Thread(target=take_over)
            thread.start()
            time.sleep(0.5)
            assert not took_over.is_set()  # blocked behind the old leader's pass
        thread.join(10)
        assert took_over.is_set() and second.term == 2
    finally:
        first.release()
        second.release()


@pytest.mark.needs("redis")
def test_the_redis_hub_fans_out_to_every_process_once_and_resumes() -> None:
    prefix = f"edgefleet-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        a, b = RedisHub(REDIS_URL, prefix, buffer=100), RedisHub(REDIS_URL, prefix, buffer=100)
        for hub in (a, b):
            hub.bind(asyncio.get_running_loop())
            await hub.start_reading()
        try:
            on_a, on_b, other_org = a.subscribe(1), b.subscribe(1), b.subscribe(2)
            await asyncio.to_thread(a.publish_many, [(1, "event", {"n": n}) for n in range(5)])
            got_a = [await asyncio.wait_for(on_a.queue.get(), 5) for _ in range(5)]
            got_b = [await asyncio.wait_for(on_b.queue.get(), 5) for _ in range(5)]
            assert [i.data["n"] for i in got_a if i] == [0, 1, 2, 3, 4]
            assert [i.cursor for i in got_a if i] == [i.cursor for i in got_b if i]
            assert other_org.queue.empty()
            last = got_a[1]
            assert last is not None
            resumed = b.subscribe(1, cursor=last.cursor)  # a browser back after cursor 2, on b
            b.publish(1, "event", {"n": 5})
            replay = [await asyncio.wait_for(resumed.queue.get(), 5) for _ in range(4)]
            assert [i.data["n"] for i in replay if i] == [2, 3, 4, 5]  # missed, then live: once each
            stale = a.subscribe(1, cursor=10**9)
            reset = await asyncio.wait_for(stale.queue.get(), 5)
            assert reset is not None and reset.type == "reset"
        finally:
            for hub in (a, b):
                await hub.stop_reading()

    try:
        asyncio.run(scenario())
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(f"{prefix}:stream", f"{prefix}:stream:cursor")
        client.close()
