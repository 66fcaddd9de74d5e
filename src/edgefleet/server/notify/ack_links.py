"""Signed one-time links that acknowledge an alarm from a notification.

A link carries a JWT (HS256 under a key derived from `EDGEFLEET_SECRET_KEY` for this purpose only):
the alarm, the organization, an id and an expiry. It is made from the transition alone, so every
resend of a notification carries the same link. Opening it (GET) changes nothing (mail scanners
fetch links); the confirmation page's POST acknowledges, once: the link's id is then stored, and a
second use, an expired or a forged link are refused.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import AckLinkUse, Alarm, NotifyTransition
from edgefleet.server.services import audit

AUDIENCE = "edgefleet-alarm-ack"
PATH = "/notify/ack"

Verdict = Literal["ok", "used", "expired", "invalid", "cleared", "acknowledged", "unknown"]
MESSAGES: dict[str, str] = {
    "ok": "Alarm acknowledged.",
    "used": "This link was used already; it works once.",
    "expired": "This link has expired; acknowledge the alarm in the dashboard.",
    "invalid": "This link is not valid.",
    "cleared": "The alarm is cleared already; nothing to acknowledge.",
    "acknowledged": "The alarm was acknowledged already.",
    "unknown": "The alarm no longer exists.",
}


@dataclass(frozen=True)
class LinkClaims:
    alarm_id: int
    org_id: int
    token_id: str
    expires_at: datetime


def _key(secret: SecretStr) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"edgefleet notifications", info=b"ack links v1")
    return hkdf.derive(secret.get_secret_value().encode())


def make_token(secret: SecretStr, transition: NotifyTransition, ttl_s: int) -> str:
    if transition.alarm_id is None:
        raise ValueError("a test notification has no alarm to acknowledge")
    issued = transition.created_at
    claims = {
        "aud": AUDIENCE,
        "alarm": transition.alarm_id,
        "org": transition.org_id,
        "jti": transition.uid,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_s)).timestamp()),
    }
    return jwt.encode(claims, _key(secret), algorithm="HS256")


def make_link(public_url: str, secret: SecretStr, transition: NotifyTransition, ttl_s: int) -> str:
    return f"{public_url.rstrip('/')}{PATH}?token={make_token(secret, transition, ttl_s)}"


def read_token(secret: SecretStr, token: str, now: datetime | None = None) -> LinkClaims | Verdict:
    """The link's claims, or why it is refused (`expired`, `invalid`)."""
    now = now or utc_now()
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "jti", "aud"], "verify_exp": False},
        )
        alarm_id, org_id, token_id = int(claims["alarm"]), int(claims["org"]), str(claims["jti"])
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError, OverflowError):
        return "invalid"
    if expires <= now:  # checked here, against the caller's clock
        return "expired"
    return LinkClaims(alarm_id, org_id, token_id, expires)


def check(session: Session, secret: SecretStr, token: str, now: datetime | None = None) -> Verdict:
    """What using the link would do, without doing it (the confirmation page's GET)."""
    claims = read_token(secret, token, now)
    if isinstance(claims, str):
        return claims
    if session.get(AckLinkUse, claims.token_id) is not None:
        return "used"
    return _alarm_verdict(session.get(Alarm, claims.alarm_id), claims)


def _alarm_verdict(alarm: Alarm | None, claims: LinkClaims) -> Verdict:
    if alarm is None or alarm.org_id != claims.org_id:
        return "unknown"
    if alarm.cleared_at is not None:
        return "cleared"
    return "acknowledged" if alarm.acked_at is not None else "ok"


def use(session: Session, secret: SecretStr, token: str, now: datetime | None = None) -> Verdict:
    """Acknowledge the link's alarm and spend the link (the confirmation page's POST)."""
    now = now or utc_now()
    claims = read_token(secret, token, now)
    if isinstance(claims, str):
        return claims
    try:
        with session.begin_nested():
            session.add(
                AckLinkUse(token_id=claims.token_id, alarm_id=claims.alarm_id, expires_at=claims.expires_at)
            )
    except IntegrityError:
        return "used"
    alarm = session.get(Alarm, claims.alarm_id)
    verdict = _alarm_verdict(alarm, claims)
    if verdict == "ok" and alarm is not None:
        alarm.acked_at = now
        audit.record(session, alarm.org_id, None, "alarm.ack", "alarm", alarm.id, via="notification link")
    return verdict
