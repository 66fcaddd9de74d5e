"""Chat and push services through Apprise URLs (Slack, Teams, Discord, Telegram, ntfy, Pushover, ...).
One delivery per URL (`url:N`), so a retry after one service failed does not repeat the others."""

import apprise

from edgefleet.server.notify.channels.base import Outgoing, SendError, silence
from edgefleet.server.notify.config import AppriseConfig
from edgefleet.server.notify.message import plain_text

silence("apprise")  # its messages quote the URLs ("Loaded ntfy URL: ntfy://host/<topic>")
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
    service = getattr(notifier[0], "service_name", None) or "the service"
    try:
        ok = notifier.notify(body=plain_text(out.note), title=out.note.title, notify_type=kind)
    except Exception as err:  # its text may quote the URL: only the type is kept
        raise SendError(f"URL {index + 1}: {service} failed ({type(err).__name__})") from None
    if not ok:
        # a fixed text: Apprise's own messages can quote parts of the URL, which are the credential
        # (an ntfy topic, a Slack token), and the delivery log is visible to every member
        raise SendError(f"URL {index + 1}: {service} refused the notification (details withheld)")
