"""PostgreSQL that refuses connections, and PostgreSQL switched read-only (a failover to a standby
looks the same to a client), while devices publish: the ingest keeps its batches unacknowledged and
retries; nothing is rejected, lost or stored twice, and the server's log stays compact.

Issue 17 found a read-only database losing messages: `ReadOnlySqlTransaction` was not retryable, so
each message was rejected as `store_error` and acknowledged; and a traceback per retry in the log.
Only the test's own database is touched: the server reaches PostgreSQL through a proxy of the
test's own, or the test's database is altered and its backends terminated."""

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosResult

pytestmark = [pytest.mark.needs("postgres", "mosquitto"), pytest.mark.slow]


def test_database_refusing_connections(chaos: Callable[..., ChaosResult]) -> None:
    result = chaos("db-refused")
    assert result.problems() == [], result.describe()
    assert result.published_during_fault > 0
    assert result.server_tracebacks == 0, result.describe()


def test_database_read_only_then_read_write(chaos: Callable[..., ChaosResult]) -> None:
    result = chaos("db-read-only")
    assert result.problems() == [], result.describe()
    assert result.published_during_fault > 0
    assert result.server_tracebacks == 0, result.describe()
