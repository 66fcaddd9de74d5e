"""The demo's notifications: a local test inbox (a real SMTP server on loopback) and, in the demo
organization, an email channel to it with a rule for every alarm. Both are ordinary: the channel and
rule can be changed or joined by others on the dashboard's Notifications page.

Each mail is appended to `<home>/inbox.mbox` and logged with how long after the alarm it arrived.
"""

import logging
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.cli.demo.options import HOST, DemoError
from edgefleet.cli.demo.ports import check_mqtt_port
from edgefleet.contracts import utc_now
from edgefleet.server import ServerError
from edgefleet.server.db import transaction
from edgefleet.server.db.models import NotifyChannel, User
from edgefleet.server.notify import service
from edgefleet.server.notify.local_inbox import LocalInbox
from edgefleet.server.notify.schemas import ChannelCreate, ChannelUpdate, RuleCreate
from edgefleet.server.services.principal import Principal

log = logging.getLogger(__name__)
CHANNEL_NAME = "Demo inbox"
RECIPIENT = "maintenance@demo-plant.example"


def _on_mail(mail: EmailMessage) -> None:
    try:
        written = parsedate_to_datetime(str(mail["Date"]))
        delay = f"{(utc_now() - written).total_seconds():.1f} s after the alarm changed"
    except (TypeError, ValueError):
        delay = "delay unknown"
    log.warning("demo inbox: %s (%s)", mail["Subject"], delay)


def start_inbox(mbox: Path) -> LocalInbox:
    """A local SMTP server on a free loopback port."""
    inbox = LocalInbox(check_mqtt_port(HOST, 0), mbox=mbox, host=HOST, on_mail=_on_mail)
    try:
        inbox.start()
    except (OSError, RuntimeError) as err:
        raise DemoError(f"cannot start the demo's test inbox: {err}") from err
    return inbox


def connect_channel(sessions: sessionmaker[Session], email: str, port: int, secret_key: SecretStr) -> None:
    """The demo organization's email channel to the inbox (its port changes per run) and, when the
    channel is new, a rule that sends it every alarm."""
    try:
        with transaction(sessions) as session:
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                raise DemoError(f"the demo user {email} is missing")
            principal = Principal(user, via="session")
            existing = session.scalar(
                select(NotifyChannel).where(
                    NotifyChannel.org_id == user.org_id, NotifyChannel.name == CHANNEL_NAME
                )
            )
            if existing is not None:
                update = ChannelUpdate(config={"port": port})
                service.update_channel(session, principal, existing.id, update, secret_key)
                return
            config = {"host": HOST, "port": port, "security": "none"}
            config |= {"sender": "edgefleet@demo-plant.example", "to": [RECIPIENT]}
            body = ChannelCreate(name=CHANNEL_NAME, kind="email", config=config)
            channel = service.create_channel(session, principal, body, secret_key)
            service.create_rule(
                session, principal, RuleCreate(name="Every alarm to the demo inbox", channel_ids=[channel.id])
            )
    except ServerError as err:
        raise DemoError(f"cannot set up the demo's notification channel: {err}") from err
