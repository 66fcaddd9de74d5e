"""The server process killed (SIGKILL) and started again while devices publish.

With Mosquitto the ingest's persistent session keeps what arrives meanwhile; with the embedded
broker (the demo's defaults: SQLite, amqtt inside the server) the broker dies with the server, and
issue 17 found it lost one message per device: amqtt acknowledged on receipt, before the commit."""

from collections.abc import Callable

import pytest

from tests.chaos.harness import ChaosResult

pytestmark = pytest.mark.slow


@pytest.mark.needs("postgres", "mosquitto")
def test_server_kill_9_with_postgresql_and_mosquitto(chaos: Callable[..., ChaosResult]) -> None:
    result = chaos("server-kill")
    assert result.problems() == [], result.describe()
    assert result.server_starts == 2


def test_server_kill_9_with_the_embedded_defaults(chaos: Callable[..., ChaosResult]) -> None:
    result = chaos("server-kill-embedded")
    assert result.problems() == [], result.describe()
    assert result.server_starts == 2 and result.published_during_fault > 0
