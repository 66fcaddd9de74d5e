"""Starting and stopping what a process shares with the others through Redis (REDIS_URL): the live
stream's reader (processes that serve WebSocket clients: roles `api` and `all`) and the cache
invalidation listener (every role). Without REDIS_URL there is nothing to start."""

import asyncio
from dataclasses import dataclass

from edgefleet.server.cluster.invalidation import Invalidation
from edgefleet.server.cluster.redis_hub import RedisHub
from edgefleet.server.context import ServerContext


@dataclass
class Shared:
    hub: RedisHub | None = None
    invalidation: Invalidation | None = None


async def start_shared(context: ServerContext) -> Shared:
    settings = context.settings
    shared = Shared()
    if not settings.redis_url:
        return shared
    if isinstance(context.hub, RedisHub):
        shared.hub = context.hub
        if settings.role in ("all", "api"):
            await context.hub.start_reading()
    shared.invalidation = Invalidation(
        settings.redis_url, settings.redis_prefix, context.run_device_listeners
    )
    shared.invalidation.start()
    context.announce_devices_changed = shared.invalidation.devices_changed
    return shared


async def stop_shared(shared: Shared) -> None:
    if shared.invalidation is not None:
        await asyncio.to_thread(shared.invalidation.stop)
    if shared.hub is not None:
        await shared.hub.stop_reading()
