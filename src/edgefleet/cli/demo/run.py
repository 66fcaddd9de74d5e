"""The demo run: server + broker + dashboard, demo organization, vibration fleet and camera nodes,
started in that order and stopped in the reverse one (devices say `offline` before the server goes).
"""

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from pydantic import SecretStr
from sqlalchemy import func, select

from edgefleet.cli.demo.cameras import (
    CAMERAS,
    CameraFleet,
    CameraRow,
    frames_problem,
    known_secret,
    provision,
)
from edgefleet.cli.demo.inbox import connect_channel, start_inbox
from edgefleet.cli.demo.models import ModelPlan, person_model_dir, plan_vibration_model
from edgefleet.cli.demo.options import HOST, DemoError, DemoOptions, DemoPaths
from edgefleet.cli.demo.ports import bind_http, check_mqtt_port
from edgefleet.cli.demo.seed import DeviceSpec, seed_demo
from edgefleet.cli.demo.server import DemoServer
from edgefleet.cli.demo.state import load_state, save_state
from edgefleet.cli.demo.vibration import build_fleet, vibration_specs
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.sim.fleet import DeviceRow, Fleet
from edgefleet.server import ServerSettings
from edgefleet.server.db.models import Device
from edgefleet.server.notify.local_inbox import LocalInbox

log = logging.getLogger(__name__)
# Devices connect one after another: amqtt 0.12 drops a connecting client when another subscribes
# at the same moment (it iterates its subscription table across an await).
CONNECT_STAGGER_S = 0.1


@dataclass(frozen=True)
class DemoInfo:
    """What the person running the demo needs to know."""

    url: str
    email: str
    password: str
    broker_url: str
    home: Path
    devices: list[DeviceSpec]
    cameras: list[DeviceSpec]
    camera_note: str
    user_created: bool
    added: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    inbox: str = ""
    """Where the demo's notification mails go (a local test inbox)."""


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    totals: dict[str, int]
    devices: list[DeviceRow]
    cameras: list[CameraRow]


class StopSignals:
    """SIGINT and SIGTERM set `event`. Inside `interrupting()` (training, which has nothing to stop
    cleanly) they raise KeyboardInterrupt instead, so a long step ends at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._interruptible = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.event.set()
        if self._interruptible:
            raise KeyboardInterrupt

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def interrupting(self) -> Iterator[None]:
        if self.event.is_set():
            raise KeyboardInterrupt
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False


class Demo:
    """`start(model)`, then `wait(stop)`, then `close()` (or use it as a context manager)."""

    def __init__(self, options: DemoOptions, pull_cache: Path) -> None:
        """Claims the ports at once, so a taken one fails before minutes of training, not after."""
        self.options = options
        self.paths = DemoPaths(options.home.resolve())
        self.paths.create()
        self.pull_cache = pull_cache
        self.state = load_state(self.paths.state)
        self._http_socket = bind_http(HOST, options.port)
        try:
            self._mqtt_port = check_mqtt_port(HOST, options.mqtt_port)
        except DemoError:
            self._http_socket.close()
            raise
        self.server: DemoServer | None = None
        self.fleet: Fleet | None = None
        self.cameras: CameraFleet | None = None
        self.inbox: LocalInbox | None = None
        self.device_ids: list[str] = []
        self.left_online: int | None = None
        """After `close()`: how many devices the server still saw online (0 when all said offline)."""
        self._started = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def model_plan(self) -> ModelPlan:
        return plan_vibration_model(
            self.paths.models, self.paths.home, self.options.shared, self.options.train_config
        )

    def _settings(self, mqtt_port: int) -> ServerSettings:
        return ServerSettings(
            demo=True,
            db_url=f"sqlite:///{self.paths.database}",
            broker="embedded",
            embedded_host=HOST,
            embedded_port=mqtt_port,
            secret_key=SecretStr(self.state.secret_key),
            ingest_password=SecretStr(self.state.ingest_password),
            # manifests point devices at this server for model downloads
            public_url=f"http://{HOST}:{self._http_socket.getsockname()[1]}",
        )

    def start(self, model: ModelBundle) -> DemoInfo:
        options = self.options
        # Checked again: the broker binds its port only now (0 picked a free port back then).
        mqtt_port = check_mqtt_port(HOST, self._mqtt_port)
        save_state(self.paths.state, self.state)  # the server's keys, before anything uses them
        settings = self._settings(mqtt_port)
        self.server = DemoServer(settings, self._http_socket)
        self.server.start()
        url = f"http://{HOST}:{self.server.port}"
        broker_url = f"mqtt://{HOST}:{mqtt_port}"

        camera_dir, camera_note = None, "camera nodes switched off (--no-cameras)"
        if options.cameras and (problem := frames_problem()):
            camera_note = problem
        elif options.cameras:
            camera_dir, camera_note = person_model_dir(self.pull_cache, self.paths.models, options.shared)
        vibration = vibration_specs(options.devices)
        cameras = list(CAMERAS) if camera_dir is not None else []
        known = dict(self.state.device_secrets)
        for spec in cameras:
            if secret := known_secret(self.paths.cameras / spec.id):
                known[spec.id] = secret
        seeded = seed_demo(
            self.server.context.sessions,
            self.state.email,
            self.state.password,
            vibration + cameras,
            known,
            settings.claim_token_ttl_s,
        )
        # Merged, not replaced: a smaller --devices run keeps the other devices' secrets for the next one.
        self.state.device_secrets.update({s.id: seeded.secrets[s.id] for s in vibration})
        save_state(self.paths.state, self.state)
        self.server.context.devices_changed()  # the ingest's device cache and the broker see them now
        self.inbox = start_inbox(self.paths.home / "inbox.mbox")  # alarms are mailed here (issue 21)
        connect_channel(self.server.context.sessions, self.state.email, self.inbox.port, settings.secret_key)
        self.device_ids = [spec.id for spec in vibration + cameras]

        try:
            self.fleet = build_fleet(
                model, vibration, seeded.secrets, broker_url, self.paths.outbox, options.faults
            )
            self.fleet.start(sync_clocks=False, stagger_s=CONNECT_STAGGER_S)
            self.fleet.run_in_thread(speed=options.speed)
            if camera_dir is not None:
                for spec in cameras:
                    state_dir = self.paths.cameras / spec.id
                    provision(state_dir, spec.id, seeded.secrets[spec.id], url, broker_url)
                self.cameras = CameraFleet(camera_dir, self.paths.cameras, broker_url, options.speed)
                self.cameras.start(stagger_s=CONNECT_STAGGER_S)
        except EdgeError as err:
            raise DemoError(f"cannot start the simulated devices: {err}") from err
        self._started = time.monotonic()
        return DemoInfo(
            url=url,
            email=self.state.email,
            password=self.state.password,
            broker_url=broker_url,
            home=self.paths.home,
            devices=vibration,
            cameras=cameras,
            camera_note=camera_note,
            user_created=seeded.user_created,
            added=seeded.added,
            reused=seeded.reused,
            inbox=f"{self.paths.home / 'inbox.mbox'} (SMTP 127.0.0.1:{self.inbox.port}; Notifications page)",
        )

    def snapshot(self) -> Snapshot:
        fleet, cameras = self.fleet, self.cameras
        return Snapshot(
            elapsed_s=time.monotonic() - self._started,
            totals=fleet.totals() if fleet else {},
            devices=fleet.rows() if fleet else [],
            cameras=cameras.rows() if cameras else [],
        )

    def wait(
        self,
        stop: threading.Event,
        on_tick: Callable[[Snapshot], None] | None = None,
        tick_s: float = 0.5,
    ) -> None:
        """Until `stop` is set or `--duration` has passed."""
        duration = self.options.duration_s
        while not stop.wait(tick_s):
            if on_tick is not None:
                on_tick(self.snapshot())
            if duration is not None and time.monotonic() - self._started >= duration:
                return

    def _online(self, server: DemoServer) -> int:
        query = select(func.count()).select_from(Device)
        query = query.where(Device.id.in_(self.device_ids), Device.online.is_(True))
        with server.context.sessions() as session:
            return int(session.scalar(query) or 0)

    def close(self, offline_timeout_s: float = 5.0) -> None:
        """Devices first (each publishes `offline`), then, once the server has stored that, the server."""
        fleet, cameras, server = self.fleet, self.cameras, self.server
        self.fleet = self.cameras = self.server = None
        if server is None:  # never started: the socket is still ours
            self._http_socket.close()
        for part in (fleet, cameras):
            if part is None:
                continue
            try:
                part.close()
            except Exception:  # shutting down: log it and go on stopping the rest
                log.exception("stopping %s failed", type(part).__name__)
        if server is None:
            return
        deadline = time.monotonic() + offline_timeout_s
        with contextlib.suppress(Exception):  # best effort: the server stops either way
            while (online := self._online(server)) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.left_online = online
        server.stop()
        if self.inbox is not None:
            self.inbox.stop()
            self.inbox = None
