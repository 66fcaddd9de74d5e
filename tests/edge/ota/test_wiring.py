"""OTA wiring: config validation, the claim's signing key, the sim fleet and `device run` options."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.contracts.provisioning import ProvisioningPayload
from edgefleet.edge.clock import ClockConfig
from edgefleet.edge.config import DeviceConfig, OtaConfig, OutboxConfig, TrustedKey
from edgefleet.edge.provisioning import NetworkSettings, SettingsStore
from edgefleet.edge.provisioning.claim import claim_credentials
from edgefleet.edge.sim.fleet import Fleet
from tests.edge.ota.kit import SigningKey


def test_a_trusted_key_must_match_its_id(signing_key: SigningKey) -> None:
    TrustedKey(key_id=signing_key.key_id, public_key=signing_key.public_b64)
    with pytest.raises(ValidationError, match="does not match"):
        TrustedKey(key_id=SigningKey().key_id, public_key=signing_key.public_b64)
    with pytest.raises(ValidationError):
        TrustedKey(key_id="0123456789abcdef", public_key="not base64!")
    assert OtaConfig().directory_for("dev-1") == Path(".edgefleet/ota/dev-1")
    assert not OtaConfig().enabled


@pytest.fixture
def claim_server(signing_key: SigningKey) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(
                {
                    "device_id": "cam-01",
                    "username": "cam-01",
                    "password": "pw",
                    "broker_url": None,
                    "ota_key_id": signing_key.key_id,
                    "ota_public_key": signing_key.public_b64,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_claim_brings_the_signing_key_and_it_is_stored(
    claim_server: str, signing_key: SigningKey, tmp_path: Path
) -> None:
    payload = ProvisioningPayload("net", "", "nopass", claim_server, "cam-01", "claim_token-123")
    credentials = claim_credentials(payload)
    assert credentials.trusted_keys() == [signing_key.trusted]
    store = SettingsStore(tmp_path)
    store.save(NetworkSettings("net", "", "nopass", False, claim_server), credentials)
    _, loaded = store.load()
    assert loaded is not None and loaded.trusted_keys() == [signing_key.trusted]
    # an old settings file without the fields still loads; a mismatching key is ignored
    data = json.loads(store.path.read_text())
    del data["credentials"]["ota_key_id"], data["credentials"]["ota_public_key"]
    store.path.write_text(json.dumps(data))
    _, old = store.load()
    assert old is not None and old.trusted_keys() == []
    bad = credentials.__class__(**{**credentials.__dict__, "ota_key_id": "0" * 16})
    assert bad.trusted_keys() == []


def test_a_sim_fleet_gets_one_ota_directory_per_device(signing_key: SigningKey, tmp_path: Path) -> None:
    template = DeviceConfig(
        device_id="template",
        outbox=OutboxConfig(directory=tmp_path / "outbox"),
        clock=ClockConfig(enabled=False),
    )
    fleet = Fleet(template, None, 2, trusted_keys=[signing_key.trusted], ota_dir=tmp_path / "ota")
    try:
        for device in fleet.devices:
            ota = device.config.ota
            assert ota.enabled and ota.trusted_keys == [signing_key.trusted]
            assert ota.directory == tmp_path / "ota" / device.device_id
            assert device.ota is not None and (ota.directory / "A").is_dir()
    finally:
        fleet.close()
    plain = Fleet(template, None, 1)
    try:
        assert plain.devices[0].ota is None
    finally:
        plain.close()


def test_device_run_refuses_a_bad_trust_key(tmp_path: Path, signing_key: SigningKey) -> None:
    base = ["device", "run", "--id", "d1", "--outbox-dir", str(tmp_path), "--no-ntp"]
    result = CliRunner().invoke(
        app, [*base, "--trust-key", f"{SigningKey().key_id}:{signing_key.public_b64}"]
    )
    assert result.exit_code == 1 and "does not match" in result.output
    result = CliRunner().invoke(app, [*base, "--trust-key", "0123456789abcdef:%%%"])
    assert result.exit_code == 1 and "--trust-key" in result.output
