"""Cache invalidation across server processes, over Redis pub/sub.

The one cache that must follow changes made elsewhere is the ingest's device table (`IngestStore`,
30 s at most): a device revoked or deleted through an API process must be refused by every ingest
worker at once, not after its cache entry expires. `ServerContext.devices_changed` publishes on
`{prefix}:invalidate`; every process listens on a thread and runs its own device listeners. A message
lost while Redis is away costs at most the cache's 30 s.
"""

import logging
import threading
import uuid
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

from edgefleet.server.db.faults import ErrorLog

log = logging.getLogger(__name__)
DEVICES = "devices"
RETRY_S = 1.0


class Invalidation:
    def __init__(self, url: str, prefix: str, on_devices_changed: Callable[[], None]) -> None:
        self.channel = f"{prefix}:invalidate"
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._listen_redis = redis.Redis.from_url(url, socket_connect_timeout=2)
        self._on_devices_changed = on_devices_changed
        self._me = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="invalidation", daemon=True)
        self._errors = ErrorLog(log, every_s=60.0)
        self.subscribed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._redis.close()
        self._listen_redis.close()

    def devices_changed(self) -> None:
        """Tell the other processes (this one ran its listeners already)."""
        try:
            self._redis.publish(self.channel, f"{DEVICES} {self._me}")
        except RedisError as err:
            self._errors("redis", "cannot announce a device change on Redis (%s)", err)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._listen_redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                with pubsub:
                    pubsub.subscribe(self.channel)
                    self.subscribed.set()
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message is not None:
                            self._handle(message["data"])
            except RedisError as err:
                self.subscribed.clear()
                self._errors("redis", "listening for cache invalidation on Redis failed (%s); retrying", err)
                self._stop.wait(RETRY_S)

    def _handle(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        kind, _, sender = text.partition(" ")
        if kind == DEVICES and sender != self._me:
            try:
                self._on_devices_changed()
            except Exception:
                log.exception("a device cache listener failed")
