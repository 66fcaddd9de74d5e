"""The demo's parts on their own, fast: ports, state file, model cache key, seeding, fleet, frames."""

import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgefleet.cli.demo.cameras import PLAYLISTS, camera_frames
from edgefleet.cli.demo.models import SHIPPED_CONFIG, cached_model, plan_vibration_model
from edgefleet.cli.demo.seed import seed_demo
from edgefleet.cli.demo.state import DemoState, load_state, save_state
from edgefleet.cli.demo.vibration import build_fleet, default_faults, vibration_specs
from edgefleet.cli.main import app
from edgefleet.edge.errors import ConfigError
from edgefleet.edge.sim.fleet import Fleet
from edgefleet.server import security
from edgefleet.server.db import make_engine, make_sessionmaker, upgrade
from edgefleet.server.db.models import Device, User


@pytest.mark.parametrize("option", ["--port", "--mqtt-port"])
def test_a_taken_port_fails_at_once_naming_its_option(tmp_path: Path, option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": "0", "--mqtt-port": "0", option: str(port)}
        args = ["demo", "--home", str(tmp_path / "demo"), *(x for kv in ports.items() for x in kv)]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert f"127.0.0.1:{port} is in use" in result.output
    assert f"{option} PORT" in result.output and f"{option} 0" in result.output
    assert not list((tmp_path / "demo" / "models").glob("vibration-*"))  # failed before any training


def test_bad_options_are_refused() -> None:
    result = CliRunner().invoke(app, ["demo", "--speed", "0"])
    assert result.exit_code == 2 and "--speed must be positive" in result.output


def test_state_is_private_and_survives_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = DemoState(device_secrets={"demo-vib-0001": "s3cret"})
    save_state(path, state)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_state(path) == state
    path.write_text("{not json")
    fresh = load_state(path)  # unreadable: new secrets (the devices are then re-issued)
    assert fresh.secret_key != state.secret_key and fresh.device_secrets == {}


def test_the_model_cache_is_keyed_on_the_config_sha256(tmp_path: Path) -> None:
    shipped = plan_vibration_model(tmp_path / "models", tmp_path, tmp_path, None)
    assert (
        shipped.config_path == SHIPPED_CONFIG and shipped.directory.name == f"vibration-{shipped.sha256[:16]}"
    )
    assert shipped.variables["home"] == str(tmp_path)
    changed = tmp_path / "changed.yaml"
    changed.write_text(SHIPPED_CONFIG.read_text().replace("epochs: 200", "epochs: 199"))
    other = plan_vibration_model(tmp_path / "models", tmp_path, tmp_path, changed)
    assert other.directory != shipped.directory
    assert cached_model(shipped) is None  # nothing trained yet
    shipped.directory.mkdir(parents=True)
    assert cached_model(shipped) is None  # a broken cache is not used (training replaces it)


def test_seeding_is_idempotent_and_reprovisions_a_device_whose_secret_is_lost(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    specs = vibration_specs(3)
    ids = [s.id for s in specs]

    first = seed_demo(sessions, "demo@example.com", "demo-pw-Kq8-orbit-7", specs, {}, 3600)
    assert first.user_created and first.added == ids and first.reused == []
    second = seed_demo(sessions, "demo@example.com", "demo-pw-Kq8-orbit-7", specs, first.secrets, 3600)
    assert not second.user_created and second.reused == ids and second.secrets == first.secrets

    lost = {k: v for k, v in first.secrets.items() if k != "demo-vib-0002"}
    third = seed_demo(sessions, "demo@example.com", "another-pw-Tz3-river-5", specs, lost, 3600)
    assert (
        third.added == ["demo-vib-0002"] and third.secrets["demo-vib-0002"] != first.secrets["demo-vib-0002"]
    )
    with sessions() as session:
        rows = {d.id: d for d in session.query(Device)}
        assert {i: (rows[i].name, rows[i].kind) for i in ids} == {
            "demo-vib-0001": ("Press 1", "vibration"),
            "demo-vib-0002": ("Pump 2", "vibration"),
            "demo-vib-0003": ("Fan 3", "vibration"),
        }
        assert all(security.verify_device_secret(rows[i].secret_hash, third.secrets[i]) for i in ids)
        user = session.query(User).one()  # the password the demo prints is the one that works
        assert security.verify_password(user.password_hash, "another-pw-Tz3-river-5")
    engine.dispose()


def test_fleet_takes_device_ids_and_per_device_credentials(tmp_path: Path) -> None:
    specs = vibration_specs(2)
    secrets = {"demo-vib-0001": "pw-1", "demo-vib-0002": "pw-2"}
    fleet = build_fleet(None, specs, secrets, "mqtt://127.0.0.1:1", tmp_path, faults=None)
    try:
        assert [d.device_id for d in fleet.devices] == ["demo-vib-0001", "demo-vib-0002"]
        for device in fleet.devices:
            password = device.config.mqtt.password
            assert device.config.mqtt.username == device.device_id
            assert password is not None and password.get_secret_value() == secrets[device.device_id]
            assert device.config.commissioning.windows == 60 and device.config.telemetry_interval_s == 10
    finally:
        fleet.close()
    with pytest.raises(ConfigError, match="unique"):
        Fleet(fleet.devices[0].config, None, device_ids=["a", "a"])
    with pytest.raises(ConfigError, match="does not match"):
        Fleet(fleet.devices[0].config, None, 3, device_ids=["a", "b"])


def test_fault_schedule_covers_only_the_devices_there_are() -> None:
    assert default_faults([s.id for s in vibration_specs(3)]) == "demo-vib-0003=imbalance@90,normal@900"
    assert default_faults([s.id for s in vibration_specs(12)]).count("=") == 4


def test_camera_playlists_are_frames_with_and_without_people() -> None:
    for device_id, playlist in PLAYLISTS.items():
        frames = camera_frames(playlist)
        assert len(frames) == sum(n for _, n in playlist), device_id
        assert all(f.dtype == np.uint8 and f.ndim in (2, 3) for f in frames)
        assert {"astronaut", "camera"} & {name for name, _ in playlist}  # someone walks by
