"""Devices download model packages with HTTP Basic auth (device id, secret), resumable by Range."""

import hashlib
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from edgefleet.contracts import ModelManifest
from edgefleet.contracts.model_package import read_package, verify_signature
from edgefleet.server.http_range import RangeNotSatisfiableError, byte_range
from tests.server import registry_kit as kit
from tests.server.conftest import Account, sign_up


@dataclass
class ClaimedDevice:
    device_id: str
    secret: str
    ota_public_key: str

    @property
    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.device_id, self.secret)


def _claim(client: TestClient, owner: Account, device_id: str) -> ClaimedDevice:
    added = client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers).json()
    claim = client.post(
        "/api/v1/devices/claim", json={"device_id": device_id, "claim_token": added["claim_token"]}
    ).json()
    return ClaimedDevice(device_id, claim["password"], claim["ota_public_key"])


@dataclass
class Setup:
    owner: Account
    device: ClaimedDevice
    manifest: ModelManifest

    @property
    def path(self) -> str:
        return "/" + self.manifest.url.split("/", 3)[3]


@pytest.fixture
def setup(client: TestClient) -> Setup:
    owner = sign_up(client, "owner@plant.example")
    model = kit.upload(client, owner).json()
    manifest = client.get(f"/api/v1/models/{model['id']}/manifest", headers=owner.headers).text
    return Setup(owner, _claim(client, owner, "press-1"), ModelManifest.model_validate_json(manifest))


def test_a_device_downloads_and_verifies_its_package(client: TestClient, setup: Setup) -> None:
    response = client.get(setup.path, auth=setup.device.auth)
    assert response.status_code == 200, response.text
    data = response.content
    assert response.headers["content-type"] == "application/x-edgefleet-model+tar"
    assert response.headers["etag"] == f'"{setup.manifest.sha256}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert (len(data), hashlib.sha256(data).hexdigest()) == (setup.manifest.size, setup.manifest.sha256)
    verify_signature(data, setup.manifest.signature, setup.device.ota_public_key)  # the key from the claim
    assert read_package(data).card.model_id == setup.manifest.model_id


def test_a_resumed_download_gives_the_same_bytes(client: TestClient, setup: Setup) -> None:
    whole = client.get(setup.path, auth=setup.device.auth).content
    size = len(whole)
    head = client.get(setup.path, auth=setup.device.auth, headers={"Range": "bytes=0-999"})
    assert head.status_code == 206 and head.headers["content-range"] == f"bytes 0-999/{size}"
    rest = client.get(setup.path, auth=setup.device.auth, headers={"Range": f"bytes={len(head.content)}-"})
    assert rest.status_code == 206 and rest.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert head.content + rest.content == whole
    middle = client.get(setup.path, auth=setup.device.auth, headers={"Range": "bytes=10-19"})
    assert middle.content == whole[10:20] and middle.headers["content-length"] == "10"
    tail = client.get(setup.path, auth=setup.device.auth, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == whole[-16:]
    past_end = client.get(setup.path, auth=setup.device.auth, headers={"Range": f"bytes=100-{size * 2}"})
    assert past_end.status_code == 206 and past_end.content == whole[100:]
    etag = head.headers["etag"]
    same = client.get(setup.path, auth=setup.device.auth, headers={"Range": "bytes=5-", "If-Range": etag})
    assert same.status_code == 206 and same.content == whole[5:]
    other = client.get(setup.path, auth=setup.device.auth, headers={"Range": "bytes=5-", "If-Range": '"x"'})
    assert other.status_code == 200 and other.content == whole  # the package changed: start over


@pytest.mark.parametrize(
    "header", ["bytes=SIZE-", "bytes=20-10", "bytes=0-1,4-5", "items=0-5", "bytes=-0", "bytes=-"]
)
def test_unsatisfiable_ranges_are_416(client: TestClient, setup: Setup, header: str) -> None:
    header = header.replace("SIZE", str(setup.manifest.size))
    response = client.get(setup.path, auth=setup.device.auth, headers={"Range": header})
    assert response.status_code == 416, header
    assert response.headers["content-range"] == f"bytes */{setup.manifest.size}"
    assert response.content == b""


def test_only_the_devices_own_credentials_open_the_download(client: TestClient, setup: Setup) -> None:
    def status(auth: httpx.Auth | None = None, headers: dict[str, str] | None = None) -> int:
        code: int = client.get(setup.path, auth=auth, headers=headers).status_code
        return code

    anonymous = client.get(setup.path)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Basic"
    assert status(httpx.BasicAuth(setup.device.device_id, setup.device.secret + "x")) == 401
    assert status(httpx.BasicAuth("no-such-device", setup.device.secret)) == 401
    assert status(headers=setup.owner.headers) == 401  # a user's token is not a device credential
    unclaimed = client.post("/api/v1/devices", json={"id": "press-2"}, headers=setup.owner.headers)
    assert unclaimed.status_code == 201
    assert status(httpx.BasicAuth("press-2", "")) == 401
    assert client.get("/api/v1/ota/packages/424242", auth=setup.device.auth).status_code == 404

    other_owner = sign_up(client, "owner@other.example", "Other")
    stranger = _claim(client, other_owner, "other-1")
    assert status(stranger.auth) == 404  # another organization's package does not exist for it
    other_model = kit.upload(client, other_owner).json()
    own = client.get(f"/api/v1/ota/packages/{other_model['id']}", auth=stranger.auth)
    assert own.status_code == 200

    revoked = client.post(f"/api/v1/devices/{setup.device.device_id}/revoke", headers=setup.owner.headers)
    assert revoked.status_code == 200
    assert status(setup.device.auth) == 401


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [("bytes=0-", 10, (0, 9)), ("bytes=3-5", 10, (3, 5)), ("bytes=9-9", 10, (9, 9)), ("bytes=-3", 10, (7, 9)),
     ("bytes=-30", 10, (0, 9)), ("bytes=2-99", 10, (2, 9)), (" bytes=1-2 ", 10, (1, 2))],
)  # fmt: skip
def test_byte_range(header: str, size: int, expected: tuple[int, int]) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    "header", ["bytes=10-", "bytes=5-4", "bytes=", "bytes=a-b", "bytes=1-2,3-4", "bytes=-0"]
)
def test_byte_range_refuses(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError):
        byte_range(header, 10)
