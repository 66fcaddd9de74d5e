"""Brokers the ingest benchmark starts itself: a private Mosquitto configured the way the ingest needs
(docs/server.md), and a stand-alone embedded broker for the raw-broker baseline of `--broker embedded`."""

import asyncio
import getpass
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edgefleet.server.mosquitto import BROKER_SETTINGS

# the documented settings (docs/server.md), from the one place the server keeps them
# `use_username_as_clientid` is left out: this broker is anonymous (its publishers have no
# usernames); the identity rules are tested in tests/security/test_mqtt_identity.py.
MOSQUITTO_SETTINGS = tuple(
    line
    for line in BROKER_SETTINGS.splitlines()
    if line and not line.startswith("#") and not line.startswith("use_username_as_clientid")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def mosquitto_version() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5, check=False).stdout
    except OSError:
        return "not installed"
    first = out.splitlines()[0] if out else ""
    return first.split("version", 1)[-1].strip().split()[0] if "version" in first else "unknown"


@contextmanager
def private_mosquitto(workdir: Path) -> Iterator[str]:
    """A Mosquitto 2 process of our own on a free loopback port; yields its URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("--broker mosquitto needs the mosquitto binary")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir}/mosquitto.log",
        "log_type error",
        "log_type warning",
        f"user {getpass.getuser()}",
        *MOSQUITTO_SETTINGS,
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def standalone_embedded(sessions: sessionmaker[Session], username: str, password: str) -> Iterator[str]:
    """The server's embedded broker (same class, same device auth and ACL) alone, on its own event
    loop thread and no ingest attached: what amqtt relays from plain publishers to a plain subscriber."""
    from edgefleet.server.broker import DeviceAuthority, EmbeddedBroker

    broker = EmbeddedBroker(DeviceAuthority(sessions, username, password), "127.0.0.1", free_port())
    try:  # the loop uvicorn runs the server's broker on
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="raw-embedded-broker", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(broker.start(), loop).result(30)
        yield broker.url
    finally:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
