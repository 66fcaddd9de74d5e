"""Shared fixtures and the `needs(...)` marker (skip where a service is absent, fail under CI)."""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from edgefleet.server.notify.local_inbox import LocalInbox

from tests.support.services import (
    SERVICE_CHECKS,
    MosquittoBroker,
    PostgresDatabase,
    free_port,
    in_ci,
    shared_dir,
)

pytest_plugins = ["pytester"]


def _require(service: str) -> None:
    if service not in SERVICE_CHECKS:
        raise pytest.UsageError(f"unknown service {service!r} in needs(); known: {', '.join(SERVICE_CHECKS)}")
    problem = SERVICE_CHECKS[service]()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI requires {service}: {problem}", pytrace=False)
    pytest.skip(f"needs {service}: {problem}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers(name="needs"):
        for service in marker.args:
            _require(service)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto on a free port, anonymous access allowed."""
    _require("mosquitto")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """One fresh PostgreSQL database for the test run, dropped at the end."""
    _require("postgres")
    database = PostgresDatabase()
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared datasets and models (EDGEFLEET_SHARED, default ../shared)."""
    _require("shared")
    return shared_dir()


@pytest.fixture
def inbox() -> Iterator["LocalInbox"]:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
    from edgefleet.server.notify.local_inbox import LocalInbox

    box = LocalInbox(free_port())
    box.start()
    yield box
    box.stop()
