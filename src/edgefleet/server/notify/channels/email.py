"""Email over SMTP (stdlib smtplib): STARTTLS, implicit TLS or plain for a trusted relay. The
Message-ID is the notification id, so a mail sent twice (worker killed between sending and
recording it) is recognizably the same mail."""

import smtplib
from email.message import EmailMessage
from email.utils import format_datetime

from edgefleet.server.notify.channels.base import Outgoing, SendError, short, tls_context
from edgefleet.server.notify.config import EmailConfig
from edgefleet.server.notify.message import plain_text

DOMAIN = "edgefleet.invalid"
"""Right-hand side of the Message-ID (`<efn_...@edgefleet.invalid>`): ours, never a real host."""


def compose(config: EmailConfig, out: Outgoing) -> EmailMessage:
    note = out.note
    mail = EmailMessage()
    mail["Subject"] = note.title
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.to)
    mail["Date"] = format_datetime(note.ts)
    mail["Message-ID"] = f"<{note.id}@{DOMAIN}>"
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    mail["X-Edgefleet-Notification-Id"] = note.id
    mail["X-Edgefleet-Change"] = note.change
    mail.set_content(plain_text(note))
    return mail


def send(config: EmailConfig, out: Outgoing) -> None:
    mail = compose(config, out)
    try:
        if config.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=out.timeout_s, context=tls_context(out.ca_file)
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=out.timeout_s)
        with client:
            if config.security == "starttls":
                client.starttls(context=tls_context(out.ca_file))
            if config.username:
                password = config.password.get_secret_value() if config.password else ""
                client.login(config.username, password)
            client.send_message(mail)
    except smtplib.SMTPAuthenticationError as err:
        raise SendError(f"the SMTP server refused the login ({err.smtp_code})") from err
    except smtplib.SMTPNotSupportedError as err:
        raise SendError(f"the SMTP server does not offer it: {err}") from err
    except (smtplib.SMTPException, OSError) as err:
        raise SendError(f"{config.host}:{config.port}: {short(err)}") from err
