"""The deployment bundle (deploy/) runs only commands the tests run: its server command lines are the
ones test_cluster.py starts, and its Mosquitto configuration is the documented one and starts."""

import re
import time
from pathlib import Path

import pytest
import yaml

from edgefleet.server.mosquitto import BROKER_SETTINGS
from tests.server.scale.cluster import PROCESSES, RoleProcess
from tests.support.services import MosquittoBroker

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ROLES = set(PROCESSES.values())


def _tested_shape(argv: list[str]) -> list[str]:
    """A server command line with its bind address and port as placeholders."""
    out = list(argv)
    for flag in ("--host", "--port"):
        out[out.index(flag) + 1] = f"<{flag[2:]}>"
    return out


def _tested_command_lines() -> set[tuple[str, ...]]:
    lines = set()
    for role in ROLES:
        process = RoleProcess("", "", Path("x.log"), {}, "", role=role)
        argv = process.argv()
        lines.add(tuple(_tested_shape(["edgefleet", "server", *argv[argv.index("server") + 1 :]])))
    return lines


def test_compose_runs_the_tested_command_lines_for_the_whole_topology() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "redis", "mosquitto"} <= set(services)
    roles = [s["command"][1] for s in services.values() if "command" in s]
    assert sorted(roles) == ["api", "api", "ingest", "ingest", "worker", "worker"]
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["edgefleet", "server"]' in dockerfile
    tested = _tested_command_lines()
    for name, service in services.items():
        if "command" in service:
            assert tuple(_tested_shape(["edgefleet", "server", *service["command"]])) in tested, name
    users = {s["environment"]["EDGEFLEET_INGEST_USERNAME"] for s in services.values() if "command" in s}
    assert len(users) == 6  # each process its own MQTT user (Mosquitto: username = client id)


def test_systemd_units_run_the_tested_command_lines() -> None:
    tested = _tested_command_lines()
    units = sorted((DEPLOY / "systemd").glob("edgefleet-*@.service"))
    assert [u.name for u in units] == [f"edgefleet-{r}@.service" for r in ("api", "ingest", "worker")]
    for unit in units:
        exec_start = re.search(r"^ExecStart=(.+)$", unit.read_text(encoding="utf-8"), re.MULTILINE)
        assert exec_start is not None
        argv = exec_start[1].split()
        argv[0] = "edgefleet"  # the venv's entry point
        assert tuple(_tested_shape(argv)) in tested, unit.name


def _directives(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.mark.needs("mosquitto")
def test_the_mosquitto_config_has_the_documented_settings_and_starts(tmp_path: Path) -> None:
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert _directives(BROKER_SETTINGS).items() <= _directives(text).items()
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "passwd").write_text("", encoding="utf-8")
    (auth / "acl").write_text("", encoding="utf-8")
    ours = ("listener", "persistence_location", "log_dest")  # the test broker's own, on a free port
    local = "\n".join(
        line.replace("/mosquitto/auth/", f"{auth}/")
        for line in text.splitlines()
        if not line.startswith(ours)
    )
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto", extra_config=local)
    broker.start()
    try:
        deadline = time.monotonic() + 5
        while not (auth / "mosquitto.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker.process is not None
        assert (auth / "mosquitto.pid").read_text(encoding="utf-8").strip() == str(broker.process.pid)
    finally:
        broker.stop()
