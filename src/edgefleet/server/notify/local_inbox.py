"""A local test inbox: a real SMTP server (aiosmtpd, of the `demo` and `dev` extras) on loopback that
keeps every mail it accepts, appends it to an mbox file, and says so in the log. `edgefleet demo`
points its email channel here; the notification tests use it as their mail server. Not for
production: it accepts any mail from anyone who reaches it."""

import asyncio
import logging
import mailbox
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


class LocalInbox:
    """`start()`, read `messages`, `stop()`."""

    def __init__(
        self,
        port: int,
        mbox: Path | None = None,
        host: str = "127.0.0.1",
        on_mail: Callable[[EmailMessage], None] | None = None,
        **controller_options: Any,
    ) -> None:
        self.host, self.port, self.mbox = host, port, mbox
        self.on_mail = on_mail
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.before_recipient: Callable[[], None] | None = None
        """Called in a thread before a recipient is accepted (no mail content yet): tests block here."""
        self.before_reply: Callable[[EmailMessage], None] | None = None
        """Called in a thread with a mail once it is kept, before the client hears so: tests block here."""
        self._controller = Controller(self, hostname=host, port=port, **controller_options)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        if self.before_recipient is not None:
            await asyncio.to_thread(self.before_recipient)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        mail = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(mail, EmailMessage)
        with self._arrived:
            self._messages.append(mail)
            self._arrived.notify_all()
        if self.mbox is not None:
            box = mailbox.mbox(self.mbox)
            try:
                box.add(mail)
                box.flush()
            finally:
                box.close()
        log.debug("test inbox: mail to %s: %s", mail["To"], mail["Subject"])
        if self.on_mail is not None:
            self.on_mail(mail)
        if self.before_reply is not None:
            await asyncio.to_thread(self.before_reply, mail)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float) -> list[EmailMessage]:
        """The mails once at least `count` arrived; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self._messages)} mails arrived, expected {count}, in {timeout_s} s"
                    )
                self._arrived.wait(left)
            return list(self._messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
