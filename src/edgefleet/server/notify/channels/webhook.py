"""Webhooks: the notification's JSON, signed with HMAC-SHA256.

Headers (docs/notifications.md has a verification example):
- `X-Edgefleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the channel's
  secret; the timestamp is in the signed text, so a captured request cannot be replayed later with a
  fresh one.
- `X-Edgefleet-Notification-Id`: the stable id (also the body's `id`): deduplicate on it.
A 2xx answer is success; anything else, or no answer, is retried with backoff.
"""

import hashlib
import hmac
import time

import httpx

from edgefleet.server.notify.channels.base import Outgoing, SendError, short, silence, tls_context
from edgefleet.server.notify.config import WebhookConfig, shown_url

silence("httpx")  # it logs every request's full URL at INFO; a webhook URL is a credential
SIGNATURE_HEADER = "X-Edgefleet-Signature"
ID_HEADER = "X-Edgefleet-Notification-Id"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0) -> bool:
    """What a receiver does (and the tests): the MAC matches and the timestamp is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, header) and abs(now - timestamp) <= tolerance_s


def send(config: WebhookConfig, out: Outgoing) -> None:
    body = out.body
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "edgefleet-notify/1",
        ID_HEADER: out.note.id,
    }
    if config.secret is not None:
        headers[SIGNATURE_HEADER] = signature(config.secret.get_secret_value(), int(time.time()), body)
    try:
        with httpx.Client(
            timeout=out.timeout_s, verify=tls_context(out.ca_file), follow_redirects=False
        ) as client:
            response = client.post(config.url, content=body, headers=headers)
    except httpx.HTTPError as err:
        raise SendError(f"POST {_safe(config.url)}: {short(err)}") from err
    if not response.is_success:
        raise SendError(f"POST {_safe(config.url)} answered {response.status_code} {response.reason_phrase}")


def _safe(url: str) -> str:
    """Scheme and host only: the path and query may hold a token (Slack, Teams, Discord, HA)."""
    return shown_url(url)
