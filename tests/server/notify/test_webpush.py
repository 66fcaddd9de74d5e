"""Web Push to a stand-in push service over TLS on loopback: the request carries a VAPID token signed
with the server's key, and its body decrypts (RFC 8291, aes128gcm) with the browser's keys to the
payload the service worker shows; a subscription the service says is gone is deleted."""

import base64
import json
import os
import ssl
from pathlib import Path

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from edgefleet.server.certs import make_certificates
from edgefleet.server.db import transaction
from edgefleet.server.db.models import PushSubscription, User
from edgefleet.server.errors import ConflictError
from edgefleet.server.notify import service, vapid
from edgefleet.server.notify.config import ChannelConfigError
from edgefleet.server.notify.schemas import PushSubscriptionCreate
from edgefleet.server.services import accounts
from edgefleet.server.services.principal import Principal
from tests.server.conftest import PASSWORD
from tests.server.notify.conftest import World
from tests.server.notify.receiver import http_receiver


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_push_is_signed_encrypted_and_dropped_when_gone(sqlite_world: World, tmp_path: Path) -> None:
    world = sqlite_world
    issued = make_certificates(tmp_path / "certs", ["127.0.0.1"], [])
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(issued["server"].cert, issued["server"].key)
    browser_key = ec.generate_private_key(ec.SECP256R1())  # what the browser keeps for itself
    auth = os.urandom(16)
    with http_receiver(answers=[201, 410], tls=tls) as push_service:
        with transaction(world.sessions) as session:
            keys = {
                "p256dh": _b64url(
                    browser_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
                ),
                "auth": _b64url(auth),
            }
            body = PushSubscriptionCreate(endpoint=f"{push_service.url}/wpush/v2/abc", keys=keys)
            service.subscribe(session, world.principal(session), body, allow_loopback=True)
            server_key = vapid.public_key(session, world.settings.secret_key)
        world.rule(channel_ids=[world.channel("webpush", {}, name="browsers")])
        worker = world.worker(
            notify_ca_file=str(issued["ca"].cert),
            vapid_subject="mailto:ops@plant.example",
            notify_push_allow_loopback=True,  # the stand-in push service is on loopback
        )
        alarm_id = world.open_alarm("critical")
        assert worker.run_once().sent == 1
        world.clear_alarm(alarm_id)
        assert worker.run_once().failed == 1  # 410: the browser unsubscribed
        requests = push_service.requests
    first = requests[0]
    assert first.path == "/wpush/v2/abc" and first.headers["content-encoding"] == "aes128gcm"
    assert int(first.headers["ttl"]) > 0
    scheme, _, params = first.headers["authorization"].partition(" ")
    fields = dict(part.split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == server_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64url(server_key))
    claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=push_service.url)
    assert claims["sub"] == "mailto:ops@plant.example"
    payload = json.loads(http_ece.decrypt(first.body, private_key=browser_key, auth_secret=auth))
    assert payload["title"].startswith("[edgefleet] OPEN critical anomaly alarm on")
    assert payload["tag"] == f"alarm-{alarm_id}" and payload["url"].endswith(f"/alarms?alarm={alarm_id}")
    with world.sessions() as session:
        assert session.scalars(select(PushSubscription)).all() == []
    assert [d.status for d in world.deliveries()] == ["sent", "failed"]
    assert "gone (410)" in (world.deliveries()[1].last_error or "")


KEYS = {"p256dh": "B" + "A" * 86, "auth": "A" * 22}
PUBLIC_ENDPOINT = "https://93.184.216.34/wpush/v2/mine"


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1:8443/wpush/x",
        "https://localhost/wpush/x",
        "https://[::1]/wpush/x",
        "https://10.1.2.3/wpush/x",
        "https://192.168.0.10/wpush/x",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/wpush/x",
        "https://[fd00::1]/wpush/x",
    ],
)
def test_a_member_cannot_aim_push_at_internal_addresses(sqlite_world: World, endpoint: str) -> None:
    with transaction(sqlite_world.sessions) as session, pytest.raises(ChannelConfigError, match="public"):
        body = PushSubscriptionCreate(endpoint=endpoint, keys=KEYS)
        service.subscribe(session, sqlite_world.principal(session), body)


def test_a_subscription_cannot_replace_another_users(sqlite_world: World) -> None:
    world = sqlite_world
    body = PushSubscriptionCreate(endpoint=PUBLIC_ENDPOINT, keys=KEYS)
    with transaction(world.sessions) as session:
        viewer = accounts.create_user(
            session, world.org_id, f"v-{world.device_id}@plant.example", PASSWORD, "viewer"
        )
        service.subscribe(session, Principal(viewer, via="session"), body)
    with transaction(world.sessions) as session, pytest.raises(ConflictError):
        service.subscribe(session, world.principal(session), body)
    with transaction(world.sessions) as session:  # the owner may subscribe again: replaces its own
        service.subscribe(session, Principal(session.get_one(User, viewer.id), via="session"), body)
    with world.sessions() as session:
        rows = session.scalars(select(PushSubscription)).all()
        assert [(r.endpoint, r.user_id) for r in rows] == [(PUBLIC_ENDPOINT, viewer.id)]


def test_send_time_check_refuses_an_internal_endpoint(sqlite_world: World) -> None:
    """A row that points inside (registered under another setting, or a name that now resolves
    inside): nothing is sent, the delivery fails and the subscription is dropped."""
    world = sqlite_world
    with http_receiver() as inside:
        with transaction(world.sessions) as session:
            endpoint = inside.url.replace("http://", "https://") + "/wpush/x"
            session.add(
                PushSubscription(user_id=world.user_id, org_id=world.org_id, endpoint=endpoint, **KEYS)
            )
        world.rule(channel_ids=[world.channel("webpush", {}, name="browsers")])
        world.open_alarm()
        assert world.worker().run_once().failed == 1
        assert inside.requests == []
    [delivery] = world.deliveries()
    assert delivery.status == "failed" and "not a public address" in (delivery.last_error or "")
    with world.sessions() as session:
        assert session.scalars(select(PushSubscription)).all() == []
