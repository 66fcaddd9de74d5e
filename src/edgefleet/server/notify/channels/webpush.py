"""Browser push (Web Push with VAPID, pywebpush): one delivery per subscribed browser (`push:N`).
A subscription the push service says is gone (404, 410) fails for good and is deleted by the worker."""

import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


class EndpointError(ValueError):
    """A push endpoint this server will not call; `permanent` unless the name did not resolve."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


def check_endpoint(endpoint: str, allow_loopback: bool = False) -> None:
    """Refuse an endpoint whose host resolves to a non-public address (private, loopback, link-local,
    shared, reserved): any member may register one, and the server would POST to it (SSRF).
    `allow_loopback`: tests and demos with a stand-in push service on this machine."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise EndpointError("a push endpoint must be an https:// URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as err:
        raise EndpointError(f"the push service's host does not resolve ({parts.hostname})", False) from err
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address.is_loopback and allow_loopback:
            continue
        if not address.is_global or address.is_multicast:
            raise EndpointError(f"the push endpoint's host is not a public address ({parts.hostname})")


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
