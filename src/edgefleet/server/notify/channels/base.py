"""What every channel sender gets and raises."""

import logging
import ssl
from dataclasses import dataclass

from edgefleet.contracts import AlarmNotification, encode


class SendError(Exception):
    """A delivery failed; `permanent` when retrying cannot help (the push subscription is gone).
    The message is shown in the dashboard: it never holds the channel's secrets."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Outgoing:
    note: AlarmNotification
    recipient: str
    """"" for the whole channel, `url:N` (Apprise), `push:N` (a Web Push subscription)."""
    timeout_s: float
    ca_file: str | None = None

    @property
    def body(self) -> bytes:
        """The JSON body (one attempt's; a resend may carry newer alarm facts under the same id)."""
        return encode(self.note)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trusted CAs, plus `EDGEFLEET_NOTIFY_CA_FILE` when set."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:500]


def _drop(_record: logging.LogRecord) -> bool:
    return False


def silence(logger_name: str) -> None:
    """Drop a library's log records: they quote the URLs we send to, and those hold tokens (an
    ntfy topic, a Slack webhook path). A logger filter also stops handlers attached to it directly."""
    logger = logging.getLogger(logger_name)
    if _drop not in logger.filters:
        logger.addFilter(_drop)
