"""Real services for tests: a private Mosquitto per test, a fresh PostgreSQL database per run.

Availability checks back the `needs(...)` marker: a missing service skips the test with the
reason, except under CI, where it fails instead.
"""

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PG_ADMIN_DSN = os.environ.get(
    "EDGEFLEET_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
CHROMIUM = Path(os.environ.get("EDGEFLEET_CHROMIUM", "/usr/bin/chromium"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def shared_dir() -> Path:
    return Path(os.environ.get("EDGEFLEET_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@cache
def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as err:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN!r}: {err}"


REDIS_URL = os.environ.get("EDGEFLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@cache
def _redis_problem() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis client is not installed"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as err:
        return f"Redis not reachable at {REDIS_URL}: {err}"
    return None


def _shared_problem() -> str | None:
    root = shared_dir()
    needed = [
        root / "datasets/cwru/cwru_1797_DE_float32.npz",
        root / "models/person_detect/person_detect.tflite",
    ]
    missing = [str(p) for p in needed if not p.exists()]
    return f"shared data missing: {', '.join(missing)} (set EDGEFLEET_SHARED)" if missing else None


def _chromium_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM} (make test installs Debian's chromium where it may)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def _tflm_host_problem() -> str | None:
    from edgefleet.ml.firmware.hostbuild import host_build_problem  # imported only when asked

    return host_build_problem()


AXE_JS = Path(__file__).resolve().parents[1] / "dashboard/js/node_modules/axe-core/axe.min.js"


def _axe_problem() -> str | None:
    """axe-core from npm (pinned in tests/dashboard/js/package-lock.json; `make test` installs it)."""
    if AXE_JS.exists():
        return None
    if not shutil.which("npm"):
        return "no node/npm to install axe-core for the accessibility checks"
    return "axe-core not installed: run `make axe` (npm ci in tests/dashboard/js)"


SERVICE_CHECKS: dict[str, Callable[[], str | None]] = {
    "postgres": _postgres_problem,
    "redis": _redis_problem,
    "mosquitto": lambda: None if mosquitto_binary() else "no mosquitto binary on PATH or in /usr/sbin",
    "shared": _shared_problem,
    "chromium": _chromium_problem,
    "axe": _axe_problem,
    # g++/gcc/ar and the vendored esp-tflite-micro sources (host builds of generated firmware)
    "tflm_host": _tflm_host_problem,
    "valgrind": lambda: None if shutil.which("valgrind") else "no valgrind on PATH",
}


@dataclass
class MosquittoBroker:
    """A Mosquitto 2 process of our own on a free port; stop/start keeps port and persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if "password_file" not in self.extra_config else "allow_anonymous false",
            "persistence true",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            # Started as root, mosquitto drops to user `mosquitto`, which cannot write persistence
            # into the test's 0700 directory; run as ourselves so sessions survive a restart.
            f"user {getpass.getuser()}",
        ]
        self.config_path.write_text("\n".join(base) + "\n" + self.extra_config + "\n", encoding="utf-8")

    def start(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.write_config()
        self.process = subprocess.Popen(
            [binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(self.port)
        except TimeoutError as err:
            self.process.kill()
            _, stderr = self.process.communicate()
            raise RuntimeError(f"mosquitto did not start: {stderr.decode(errors='replace')}") from err

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it; SIGTERM saves persistence (a clean restart), SIGKILL is a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None

    def reload(self) -> None:
        """Re-read password and ACL files (SIGHUP)."""
        if self.process:
            self.process.send_signal(signal.SIGHUP)


@dataclass
class PostgresDatabase:
    """A database created for one test run and dropped afterwards."""

    name: str = field(default_factory=lambda: f"edgefleet_test_{uuid.uuid4().hex[:12]}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"

    def create(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@contextmanager
def serve_app(make_app: Callable[[str], Any], timeout: float = 30.0) -> Iterator[tuple[str, Any]]:
    """Serve `make_app(url)` with uvicorn in a thread on a free port; yields (url, app).

    The port is bound before the app is built, so the app can know its own URL (e.g. `public_url`)."""
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(url)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
