"""Chat and push services through Apprise URLs (Slack, Teams, Discord, Telegram, ntfy, Pushover, ...).
One delivery per URL (`url:N`), so a retry after one service failed does not repeat the others."""

import logging

import apprise

from edgefleet.server.notify.channels.base import Outgoing, SendError
from edgefleet.server.notify.config import AppriseConfig
from edgefleet.server.notify.message import plain_text

_TYPES = {"opened": apprise.NotifyType.FAILURE, "escalated": apprise.NotifyType.WARNING}


def recipients(config: AppriseConfig) -> list[str]:
    return [f"url:{n}" for n in range(len(config.urls))]


def send(config: AppriseConfig, out: Outgoing) -> None:
    index = int(out.recipient.removeprefix("url:"))
    if not 0 <= index < len(config.urls):
        raise SendError(f"the channel has no URL {index + 1} any more", permanent=True)
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(app_id="edgefleet", app_desc="edgefleet alarms"))
    if not notifier.add(config.urls[index].get_secret_value()):
        raise SendError(f"URL {index + 1} is not a valid Apprise URL", permanent=True)
    kind = _TYPES.get(out.note.change, apprise.NotifyType.INFO)
    # Apprise logs why a service failed; keep the last lines as the delivery's error (its log lines
    # name hosts, not the tokens of the URL).
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = notifier.notify(body=plain_text(out.note), title=out.note.title, notify_type=kind)
        log_text = captured.getvalue()
    if not ok:
        detail = " | ".join(line.split(" - ", 2)[-1] for line in log_text.strip().splitlines()[-2:])
        raise SendError(f"URL {index + 1}: {detail or 'the service refused the notification'}"[:500])
