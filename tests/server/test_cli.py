"""`edgefleet server` admin commands: user create, migrate, certs, and refusing unsafe settings."""

from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.server.admin import create_user
from edgefleet.server.settings import DEFAULT_SECRET
from tests.server.conftest import PASSWORD

runner = CliRunner()


def test_user_create_makes_an_organization_then_adds_to_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["server", "user", "create", "--db", db, "--organization", "Mill", "--password", PASSWORD]
    first = runner.invoke(app, [*args, "--email", "Ann@Example.com"])
    assert first.exit_code == 0, first.output
    assert "owner of 'Mill'" in first.output
    second = runner.invoke(app, [*args, "--email", "bo@example.com", "--role", "admin"])
    assert second.exit_code == 0 and "admin of 'Mill'" in second.output
    again = runner.invoke(app, [*args, "--email", "ann@example.com"])
    assert again.exit_code == 1
    bad_role = runner.invoke(app, [*args, "--email", "cy@example.com", "--role", "god"])
    assert bad_role.exit_code == 2
    short = runner.invoke(app, [*args[:-1], "short", "--email", "dee@example.com"])
    assert short.exit_code == 2


def test_created_user_can_log_in_through_the_service(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'svc.db'}"
    created = create_user(db, "eve@example.com", PASSWORD, "viewer", "Plant")
    assert created.role == "owner" and created.org_name == "Plant"


def test_certs_issue_a_ca_server_and_device_certificates(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["server", "certs", "--out", str(tmp_path), "--host", "127.0.0.1", "--device", "press-1"]
    )
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    device = x509.load_pem_x509_certificate((tmp_path / "device-press-1.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    assert device.issuer == ca.subject and server.issuer == ca.subject
    device.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (tmp_path / "device-press-1.key").stat().st_mode & 0o077 == 0
    bad = runner.invoke(app, ["server", "certs", "--out", str(tmp_path / "x"), "--device", "bad/id"])
    assert bad.exit_code == 1


def test_serving_with_default_secrets_is_refused(tmp_path: Path) -> None:
    """Given explicitly (unset, `edgefleet server` generates its own: tests/security/test_secrets.py)."""
    command = ["server", "--db", f"sqlite:///{tmp_path / 's.db'}", "--broker", "none"]
    result = runner.invoke(app, command, env={"EDGEFLEET_SECRET_KEY": DEFAULT_SECRET})
    assert result.exit_code == 2
    assert "SECRET_KEY" in result.output
