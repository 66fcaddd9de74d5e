"""The embedded MQTT broker: amqtt in the server process, devices authenticated against the device
table and held to their own topics (per-device ACL). Anonymous access is off.

amqtt speaks MQTT 3.1.1. Ingest does not go through a TCP client here: the broker hands every accepted
device message to an in-process `tap` (the ingest writer's queue), so nothing is encoded, sent and
acknowledged twice inside one process. amqtt keeps sessions in memory: what the broker holds does not
survive a restart of the server process (use Mosquitto for that).

`FleetBroker` fixes what amqtt 0.12 gets wrong under load (see its docstring).
"""

import asyncio
import concurrent.futures
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session as MqttSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import COMMAND_CHANNELS, DEVICE_CHANNELS, TOPIC_PREFIX
from edgefleet.contracts.base import MAX_PAYLOAD_BYTES
from edgefleet.server import security
from edgefleet.server.db.models import Device
from edgefleet.server.errors import BrokerError

log = logging.getLogger(__name__)
_AUTHORITIES: dict[str, "DeviceAuthority"] = {}
OUTGOING_WINDOW = 100
"""QoS 1/2 messages in flight to one client at a time (Mosquitto's default is 20)."""
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 4096
"""The largest MQTT packet a client may send: a device message (at most 64 KiB) with room for its topic
and header. A larger one is refused before it is read, and its connection closed (amqtt would read
whatever length a client declares into memory, several times over)."""
PUBLISH_ATTEMPTS = 5
_DUMMY_DEVICE_HASH = security.hash_device_secret("edgefleet-dummy-device-secret")
Tap = Callable[[str, bytes], Awaitable[None]]


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard match of `topic` (or of a subscription filter, literally) against `topic_filter`."""
    pattern, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(pattern):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(parts) == len(pattern)


class PacketTooLargeError(AMQTTError):  # type: ignore[misc]
    """A client sent a packet over `MAX_PACKET_BYTES`: its connection is closed."""


class _BoundedReader(StreamReaderAdapter):  # type: ignore[misc]
    """amqtt reads a packet's body in one `read(n)` of the length its header declares: refuse any read
    longer than a whole packet may be, before the bytes are buffered."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        super().__init__(reader)
        self._limit = limit

    async def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._limit:
            raise PacketTooLargeError(f"a packet over {self._limit} bytes")
        data: bytes = await super().read(n)
        return data


class DeviceAuthority:
    """Decides who may connect and which topics they may use."""

    def __init__(self, sessions: sessionmaker[Session], ingest_username: str, ingest_password: str) -> None:
        self._sessions = sessions
        self._ingest_username = ingest_username
        self._ingest_password = ingest_password
        self._device_publish = tuple(c.value for c in DEVICE_CHANNELS)
        self._device_receive = tuple(c.value for c in COMMAND_CHANNELS)

    def authenticate(self, username: str | None, password: str | None, client_id: str | None) -> bool:
        if not username or password is None:
            return False
        if username == self._ingest_username:
            return hmac.compare_digest(password.encode(), self._ingest_password.encode())
        if client_id != username:  # a device connects with its id as client id: no session takeover
            return False
        with self._sessions() as session:
            row = session.execute(
                select(Device.secret_hash, Device.revoked_at).where(Device.id == username)
            ).first()
        stored = row.secret_hash if row is not None and row.revoked_at is None else None
        # The same work for unknown and revoked devices, so timing does not say which ids exist.
        matches = security.verify_device_secret(stored or _DUMMY_DEVICE_HASH, password)
        return stored is not None and matches

    def allowed(self, username: str | None, topic: str, action: Action) -> bool:
        if username is None:
            return False
        if username == self._ingest_username:
            if action == Action.PUBLISH:
                return any(_matches(f"{TOPIC_PREFIX}/+/{c}", topic) for c in self._device_receive)
            return topic.startswith(f"{TOPIC_PREFIX}/")
        own = f"{TOPIC_PREFIX}/{username}/"
        if not topic.startswith(own):
            return False
        channel = topic[len(own) :]
        # publish: its own device channels; subscribe and receive: only its own command topics
        return channel in (self._device_publish if action == Action.PUBLISH else self._device_receive)


class DeviceAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    @dataclass
    class Config:
        authority: str = ""

    async def authenticate(self, *, session: MqttSession) -> bool | None:
        authority = _AUTHORITIES[self.config.authority]
        return await asyncio.to_thread(
            authority.authenticate, session.username, session.password, session.client_id
        )


class FleetBroker(Broker):  # type: ignore[misc]
    """amqtt's broker with the device ACL built in and three amqtt 0.12 defects fixed:

    - the broadcast loop iterated the live subscription table across `await`s, so a client subscribing
      while a message was being broadcast raised "dictionary changed size during iteration" and that
      message reached nobody: it now iterates a snapshot;
    - a QoS 1 message whose PUBACK took more than 5 s was dropped, and every message was sent at once
      (one task each, no in-flight limit), so a subscriber under load lost messages: now at most
      `OUTGOING_WINDOW` are in flight per client, a late PUBACK means a resend, and what cannot be sent
      to a persistent session that went away is queued for its return;
    - retained messages were sent to a connecting client for every topic filter anyone subscribed to,
      without the receive ACL: a device received other devices' retained status. Now ACL-checked.

    A `tap` gets every accepted device message (topic, payload) in arrival order, before broadcast.
    """

    def __init__(self, config: dict[str, Any], authority: DeviceAuthority) -> None:
        super().__init__(config)
        self.authority = authority
        self.tap: Tap | None = None
        self._windows: dict[str, asyncio.Semaphore] = {}

    # --- packet size ----------------------------------------------------------------------------
    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """amqtt's TCP entry, with packets limited to `MAX_PACKET_BYTES` (see `_BoundedReader`)."""
        bounded = _BoundedReader(reader, MAX_PACKET_BYTES)
        try:
            await self._client_connected(listener_name, bounded, StreamWriterAdapter(writer))
        except PacketTooLargeError as err:  # while connecting: amqtt gives up on the client
            log.warning("broker closed a connection: %s", err)
        finally:
            if not writer.is_closing():
                writer.close()

    # --- ACL ------------------------------------------------------------------------------------
    async def _topic_filtering(self, session: MqttSession, topic: str, action: Action) -> bool:
        """The ACL, called directly: amqtt ran a plugin task per check, per message and receiver."""
        allowed = self.authority.allowed(session.username, topic, action)
        if not allowed and action != Action.RECEIVE:
            log.warning("broker refused %s of %s by %s", action.value, topic, session.username)
        return allowed

    # --- ingest tap -----------------------------------------------------------------------------
    async def _broadcast_message(
        self,
        session: MqttSession | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        if session is not None and topic is not None and data is not None:
            # publishes were checked already; a last will (its topic chosen at CONNECT) was not
            if not self.authority.allowed(session.username, topic, Action.PUBLISH):
                log.warning("broker dropped %s's message on %s (not its topic)", session.username, topic)
                return
            if self.tap is not None:
                await self.tap(topic, bytes(data))
        await super()._broadcast_message(session, topic, data, force_qos)

    # --- broadcast to subscribers -----------------------------------------------------------------
    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        broadcast = await self._broadcast_queue.get()
        topic: str = broadcast["topic"]
        for topic_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(topic, topic_filter):
                continue
            for target, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not self.authority.allowed(target.username, topic, Action.RECEIVE):
                    continue
                if target.transitions.state != "connected":
                    if not target.clean_session and qos in (QOS_1, QOS_2) and not target.is_anonymous:
                        await self._retain_broadcast_message(broadcast, qos, target)
                    continue
                running_tasks.append(
                    asyncio.ensure_future(self._deliver(target, topic, broadcast["data"], qos))
                )

    async def _deliver(self, target: MqttSession, topic: str, data: bytes | bytearray, qos: int) -> None:
        """Send one message to one client within its in-flight window; resend when the PUBACK is late."""
        window = self._windows.setdefault(target.client_id, asyncio.Semaphore(OUTGOING_WINDOW))
        async with window:
            for _ in range(PUBLISH_ATTEMPTS):
                handler = self._get_handler(target)
                if handler is None or target.transitions.state != "connected":
                    break
                try:
                    await handler.mqtt_publish(topic, data, qos, retain=False)
                    return
                except TimeoutError:
                    log.info("no PUBACK from %s in time; sending again", target.client_id)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # the broker shuts down
                    break  # the connection closed under the message
                except AMQTTError as err:
                    log.warning("delivery to %s failed: %s", target.client_id, err)
                    break
        if qos > QOS_0 and not target.clean_session and self._sessions.get(target.client_id, (None,))[0]:
            source = {"session": None, "topic": topic, "data": data}
            await self._retain_broadcast_message(source, qos, target)
        else:
            log.warning("message on %s not delivered to %s", topic, target.client_id)

    async def _publish_session_retained_messages(self, session: MqttSession) -> None:
        """Messages queued while the client was away, through the in-flight window (amqtt: all at once)."""
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            task = asyncio.ensure_future(
                self._deliver(session, queued.topic, queued.data, queued.qos or QOS_1)
            )
            self._tasks_queue.append(task)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: MqttSession
    ) -> None:
        """Retained messages matching a filter the client may receive. Does not suspend: amqtt calls it
        inside a loop over the live subscription table."""
        handler = self._get_handler(session)
        if handler is None:
            return
        topic_filter, qos = subscription
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and self.authority.allowed(
                session.username, topic, Action.RECEIVE
            ):
                coro = handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), retain=True)
                self._tasks_queue.append(asyncio.ensure_future(coro))

    async def _delete_session(self, client_id: str) -> None:
        self._windows.pop(client_id, None)
        await super()._delete_session(client_id)


def _log_failure(future: "concurrent.futures.Future[None]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("publishing from the server failed: %s", future.exception())


class EmbeddedBroker:
    def __init__(self, authority: DeviceAuthority, host: str, port: int) -> None:
        self._key = secrets.token_hex(8)
        self._authority = authority
        self.host, self.port = host, port
        self._broker: FleetBroker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tap: Tap | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def set_tap(self, tap: Tap | None) -> None:
        """Hand every accepted device message to `tap` (awaited on the broker's loop: backpressure)."""
        self._tap = tap
        if self._broker is not None:
            self._broker.tap = tap

    async def start(self) -> None:
        _AUTHORITIES[self._key] = self._authority
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {f"{__name__}.DeviceAuthPlugin": {"authority": self._key}},
        }
        self._loop = asyncio.get_running_loop()
        self._broker = FleetBroker(config, self._authority)
        self._broker.tap = self._tap
        try:
            await self._broker.start()
        except Exception as err:
            _AUTHORITIES.pop(self._key, None)
            self._broker = None
            raise BrokerError(f"the embedded broker cannot listen on {self.host}:{self.port}: {err}") from err
        log.info("embedded MQTT broker on %s", self.url)

    def publish(self, topic: str, payload: bytes, qos: int = QOS_1) -> None:
        """Publish as the server (to devices' command topics); callable from any thread."""
        broker, loop = self._broker, self._loop
        if broker is None or loop is None:
            raise BrokerError("the embedded broker is not running")
        future = asyncio.run_coroutine_threadsafe(
            broker.internal_message_broadcast(topic, payload, qos), loop
        )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # on the broker's own loop the broadcast is queued as soon as we yield
            future.result(timeout=10)

    def publish_many(self, messages: list[tuple[str, bytes]], qos: int = QOS_1) -> None:
        """Publish as the server, in order, without waiting for the broker's loop (the ingest's acks,
        from its writer thread); callable from any thread."""
        broker, loop = self._broker, self._loop
        if broker is None or loop is None:
            raise BrokerError("the embedded broker is not running")

        async def broadcast() -> None:
            for topic, payload in messages:
                await broker.internal_message_broadcast(topic, payload, qos)

        coroutine = broadcast()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        except RuntimeError as err:  # the loop is closed: the server is stopping
            coroutine.close()
            raise BrokerError("the embedded broker is not running") from err
        future.add_done_callback(_log_failure)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
        _AUTHORITIES.pop(self._key, None)
