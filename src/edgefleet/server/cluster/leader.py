"""Leader election for the worker role: exactly one process runs the rollout engine, retention and
the other singleton loops.

`PostgresLeadership` holds a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated
connection. The lock is PostgreSQL's to give: it is released when that session ends, which for a
process killed on this machine is at once (the kernel closes its socket), and for a host that vanishes
within the TCP keepalive the session sets (`KEEPALIVE`: about 11 s). A standby tries every
`LEADER_POLL_S`, so takeover takes at most that plus the time PostgreSQL needs to see the session end.

A deposed leader may not know it yet (its connection is cut but its process runs on). The fencing
token stops its work from landing: on taking the lock a leader raises `leader_terms.term`, and every
pass of leader work checks, in its own transaction, that the term is still its own (`fence`: the row
read FOR SHARE, so a new leader's raise waits for a pass in flight to commit and every later pass of
the old leader sees the new term and rolls back). `LocalLeadership` is the embedded default (role
`all`, or SQLite): this process is the only copy and always leads.
"""

import logging
import os
import socket
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from edgefleet.server.errors import ServerError

log = logging.getLogger(__name__)
LOCK_KEY = 0x6566_776B  # "efwk"
TERM_NAME = "worker"
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
"""Client side: this process notices a dead server; the session settings below: the server notices a
dead client and releases the lock (5 + 3 x 2 = 11 s)."""
SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)


class NotLeaderError(ServerError):
    """This process is not (or no longer) the leader: its pass must not commit."""


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int | None: ...

    def poll(self) -> bool:
        """Take the leadership if free, check it if held; whether this process leads now."""
        ...

    def fence(self, session: Session) -> None:
        """Raise NotLeaderError unless this process leads under its term, in `session`'s transaction."""
        ...

    def release(self) -> None: ...


class LocalLeadership:
    """The only copy: always the leader, nothing to fence."""

    is_leader = True
    term = None

    def poll(self) -> bool:
        return True

    def fence(self, session: Session) -> None:
        del session

    def release(self) -> None:
        return None


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PostgresLeadership:
    def __init__(self, engine: Engine, name: str = TERM_NAME, key: int = LOCK_KEY) -> None:
        self._engine = engine  # the app's pool, for the term update
        self._lock_engine = create_engine(engine.url, poolclass=NullPool, connect_args=KEEPALIVE)
        self._name = name
        self._key = key
        self._connection: Connection | None = None
        self._term: int | None = None
        self._deposed = False
        self.holder = holder_name()

    @property
    def is_leader(self) -> bool:
        return self._term is not None and not self._deposed

    @property
    def term(self) -> int | None:
        return self._term

    def poll(self) -> bool:
        if self._deposed:  # a newer term exists: give the lock up, contend again
            self._drop()
        try:
            if self._connection is None:
                self._try_acquire()
            else:
                self._connection.execute(text("SELECT 1"))  # the session (and its lock) is alive
        except Exception as err:  # the lock's session is gone: so is the lock
            if self._term is not None:
                log.warning("worker leadership lost (term %s): %s", self._term, err)
            self._drop()
        return self.is_leader

    def _try_acquire(self) -> None:
        connection = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.exec_driver_sql(SERVER_KEEPALIVE)
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
        except Exception:
            connection.close()
            raise
        if not taken:
            connection.close()
            return
        self._connection = connection
        with self._engine.begin() as tx:  # waits for a pass of the previous leader still in flight
            self._term = int(
                tx.execute(
                    text(
                        "INSERT INTO leader_terms (name, term, holder, since) VALUES (:n, 1, :h, :t) "
                        "ON CONFLICT (name) DO UPDATE SET term = leader_terms.term + 1, holder = :h, "
                        "since = :t RETURNING term"
                    ),
                    {"n": self._name, "h": self.holder, "t": datetime.now(UTC)},
                ).scalar_one()
            )
        log.warning("this process (%s) leads the workers now (term %d)", self.holder, self._term)

    def fence(self, session: Session) -> None:
        term = self._term
        if term is None or self._deposed:
            raise NotLeaderError("not the worker leader")
        current = session.execute(
            text("SELECT term FROM leader_terms WHERE name = :n FOR SHARE"), {"n": self._name}
        ).scalar()
        if current != term:
            self._deposed = True  # a newer leader exists: stop leading at once, drop the lock next poll
            raise NotLeaderError(f"deposed: term {current} replaced this leader's term {term}")

    def _drop(self) -> None:
        self._term, self._deposed = None, False
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # already broken
                log.debug("closing the lock connection failed", exc_info=True)
            self._connection = None

    def release(self) -> None:
        """Give the leadership up (a clean stop): the standby takes over at its next poll."""
        self._drop()
        self._lock_engine.dispose()
