"""Starting and stopping the MQTT side: ingest worker, Mosquitto file sync, embedded broker."""

import asyncio
import logging
from dataclasses import dataclass

from edgefleet.contracts import Channel, topic_for
from edgefleet.server.broker import DeviceAuthority, EmbeddedBroker
from edgefleet.server.context import ServerContext
from edgefleet.server.ingest import IngestStore, IngestWorker
from edgefleet.server.ingest.local import LocalIngest
from edgefleet.server.ingest.mqtt import parse_broker_url
from edgefleet.server.ingest.worker import RateLimitedLog
from edgefleet.server.services.drift import DriftLimits

log = logging.getLogger(__name__)


@dataclass
class MqttRuntime:
    worker: IngestWorker | LocalIngest | None = None
    broker: EmbeddedBroker | None = None


async def start_mqtt(context: ServerContext) -> MqttRuntime:
    settings = context.settings
    runtime = MqttRuntime()
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
    if settings.mosquitto_password_file:
        from edgefleet.server.mosquitto import MosquittoSync

        sync = MosquittoSync(context.sessions, settings)
        await asyncio.to_thread(sync.sync)
        context.device_listeners.append(sync.sync)
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


async def stop_mqtt(runtime: MqttRuntime) -> None:
    if runtime.worker is not None:
        await asyncio.to_thread(runtime.worker.stop)
        runtime.worker = None
    if runtime.broker is not None:
        await runtime.broker.stop()
        runtime.broker = None
