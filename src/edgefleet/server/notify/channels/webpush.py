"""Browser push (Web Push with VAPID, pywebpush): one delivery per subscribed browser (`push:N`).
A subscription the push service says is gone (404, 410) fails for good and is deleted by the worker."""

import json
from dataclasses import dataclass
from typing import Any

import requests
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush
from requests.adapters import HTTPAdapter

from edgefleet.server.notify.channels.base import Outgoing, SendError, short, tls_context

TTL_S = 24 * 3600
"""How long the push service keeps a message for a browser that is offline."""


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class VapidKey:
    private_raw: str
    subject: str
    """`mailto:` or an https URL: whom the push service contacts about us."""


def payload(out: Outgoing) -> str:
    """What the service worker's `push` handler gets (`docs/notifications.md`)."""
    note = out.note
    return json.dumps(
        {
            "id": note.id,
            "title": note.title,
            "body": note.text.splitlines()[0] if note.text else "",
            "url": note.links.alarm or "/alarms",
            "tag": f"alarm-{note.alarm.id}" if note.alarm else note.id,
            "change": note.change,
        }
    )


class _TrustAdapter(HTTPAdapter):
    """Verifies with `tls_context` (the system's CAs and EDGEFLEET_NOTIFY_CA_FILE): requests alone
    would let REQUESTS_CA_BUNDLE from the environment replace the extra CA."""

    def __init__(self, ca_file: str | None) -> None:
        self._context = tls_context(ca_file)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def send(subscription: Subscription, key: VapidKey, out: Outgoing) -> None:
    session = requests.Session()
    session.mount("https://", _TrustAdapter(out.ca_file))
    info = {
        "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
    }
    try:
        webpush(
            info,
            data=payload(out),
            vapid_private_key=Vapid02.from_raw(key.private_raw.encode()),
            vapid_claims={"sub": key.subject},
            ttl=TTL_S,
            timeout=out.timeout_s,
            requests_session=session,
        )
    except WebPushException as err:
        status = err.response.status_code if err.response is not None else None
        if status in (404, 410):
            raise SendError(f"the browser's subscription is gone ({status})", permanent=True) from err
        raise SendError(f"push service answered {status}" if status else short(err)) from err
    except (requests.RequestException, ValueError) as err:
        raise SendError(short(err)) from err
    finally:
        session.close()
