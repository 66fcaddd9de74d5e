"""Starting and stopping the MQTT side: ingest worker, Mosquitto file sync, embedded broker.

An external broker that cannot be reached at start is not fatal: the ingest keeps connecting in the
background and `MqttRuntime.state` says where it is (the health endpoints report it).
"""

import asyncio
import logging
from dataclasses import dataclass

from edgefleet.contracts import Channel, topic_for
from edgefleet.server.broker import DeviceAuthority, EmbeddedBroker
from edgefleet.server.cluster.publisher import MqttPublisher
from edgefleet.server.context import ServerContext
from edgefleet.server.ingest import IngestStore, IngestWorker
from edgefleet.server.ingest.local import LocalIngest
from edgefleet.server.ingest.mqtt import BrokerAddress, parse_broker_url
from edgefleet.server.ingest.worker import RateLimitedLog
from edgefleet.server.services.drift import DriftLimits

log = logging.getLogger(__name__)
CONNECT_WAIT_S = 3.0
"""How long the start waits for the broker before serving without it (it keeps connecting)."""


@dataclass
class MqttRuntime:
    worker: IngestWorker | LocalIngest | MqttPublisher | None = None
    """The ingest (roles `all`, `ingest`), or a client that only publishes commands (`api`, `worker`)."""
    broker: EmbeddedBroker | None = None
    broker_url: str | None = None

    @property
    def state(self) -> str:
        """`connected`, `connecting` (to a broker not reachable yet) or `stopped` (not started)."""
        if self.worker is None:
            return "stopped"
        return "connected" if self.worker.connected else "connecting"


async def start_mqtt(context: ServerContext, runtime: MqttRuntime | None = None) -> MqttRuntime:
    """Start the MQTT side into `runtime` (a new one by default). Raises only for what waiting
    cannot fix (the embedded broker's port is taken)."""
    settings = context.settings
    runtime = runtime or MqttRuntime()
    if settings.broker_mode == "none":
        return runtime
    mqtt5 = True
    if settings.broker_mode == "embedded":
        authority = DeviceAuthority(
            context.sessions, settings.ingest_username, settings.ingest_password.get_secret_value()
        )
        runtime.broker = EmbeddedBroker(authority, settings.embedded_host, settings.embedded_port)
        await runtime.broker.start()
        address = parse_broker_url(runtime.broker.url)
        mqtt5 = False  # amqtt speaks MQTT 3.1.1: no shared subscriptions
    else:
        address = parse_broker_url(settings.broker)
    runtime.broker_url = address.url
    if settings.mosquitto_password_file and settings.role in ("all", "api"):  # where devices change
        from edgefleet.server.mosquitto import MosquittoSync

        sync = MosquittoSync(context.sessions, settings)
        await asyncio.to_thread(sync.sync)
        context.device_listeners.append(sync.sync)
    if settings.role in ("api", "worker"):  # they publish commands; only the ingest role subscribes
        return await _start_publisher(context, runtime, address)
    store = IngestStore(
        context.sessions,
        settings.alarm_notify_cooldown_s,
        on_reject=RateLimitedLog(),
        drift_limits=DriftLimits.from_settings(settings),
        sample_keep_per_device=settings.sample_keep_per_device,
    )
    worker: IngestWorker | LocalIngest
    if runtime.broker is not None:  # in this process: the broker's tap feeds the writer directly
        worker = LocalIngest(
            store,
            runtime.broker,
            metrics=context.metrics,
            publish=context.hub.publish_many,
            batch_size=settings.ingest_batch_size,
            flush_ms=settings.ingest_flush_ms,
            queue_max=settings.ingest_queue_max,
        )
    else:
        worker = IngestWorker(
            store,
            address,
            client_id=settings.ingest_client_id,
            username=settings.ingest_username,
            password=settings.ingest_password.get_secret_value(),
            group=settings.ingest_group if settings.ingest_shared and mqtt5 else None,
            metrics=context.metrics,
            publish=context.hub.publish_many,
            batch_size=settings.ingest_batch_size,
            flush_ms=settings.ingest_flush_ms,
            queue_max=settings.ingest_queue_max,
            ca_file=settings.mqtt_ca_file,
            mqtt5=mqtt5,
        )
    try:
        if isinstance(worker, IngestWorker):
            await asyncio.to_thread(worker.start, CONNECT_WAIT_S)
        else:
            await asyncio.to_thread(worker.start)
    except BaseException:
        await stop_mqtt(runtime)
        raise
    runtime.worker = worker
    context.device_listeners.append(store.invalidate_devices)
    context.publish_command = worker.publish_command
    context.publish_ota = lambda c: worker.publish_message(topic_for(c.device_id, Channel.OTA_CMD), c)
    context.broker_url_for_devices = settings.device_broker_url or address.url
    return runtime


async def _start_publisher(
    context: ServerContext, runtime: MqttRuntime, address: BrokerAddress
) -> MqttRuntime:
    settings = context.settings
    publisher = MqttPublisher(
        address,
        client_id=settings.ingest_client_id,
        username=settings.ingest_username,
        password=settings.ingest_password.get_secret_value(),
        ca_file=settings.mqtt_ca_file,
    )
    await asyncio.to_thread(publisher.start, CONNECT_WAIT_S)
    runtime.worker = publisher
    context.publish_command = publisher.publish_command
    context.publish_ota = lambda c: publisher.publish_message(topic_for(c.device_id, Channel.OTA_CMD), c)
    context.broker_url_for_devices = settings.device_broker_url or address.url
    return runtime


async def stop_mqtt(runtime: MqttRuntime) -> None:
    if runtime.worker is not None:
        await asyncio.to_thread(runtime.worker.stop)
        runtime.worker = None
    if runtime.broker is not None:
        await runtime.broker.stop()
        runtime.broker = None
