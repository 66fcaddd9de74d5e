"""`edgefleet server`: the API, ingest and embedded broker, and admin commands."""

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.console import console, fail

log = logging.getLogger(__name__)
app = typer.Typer(help="Server: start API + ingest (+ embedded broker); admin commands.")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: EDGEFLEET_DB_URL or sqlite:///edgefleet.db)."),
]


def _settings(**overrides: Any) -> Any:

    from pydantic import ValidationError

    from edgefleet.server import ServerSettings

    try:
        return ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        fail(f"bad server settings: {err}", code=2)


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    db: DbOption = None,
    broker: Annotated[
        str | None,
        typer.Option(
            help="embedded | mqtt://host:port | mqtts://host:port | none (default: EDGEFLEET_BROKER)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    mqtt_port: Annotated[
        int | None,
        typer.Option(help="Port of the embedded MQTT broker (default: EDGEFLEET_EMBEDDED_PORT or 1883)."),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Open sign-up; the built-in default secrets are allowed on loopback only.",
        ),
    ] = None,
    dashboard: Annotated[
        bool, typer.Option("--dashboard/--no-dashboard", help="Serve the web dashboard at /.")
    ] = True,
    role: Annotated[
        str | None,
        typer.Option(
            help="all (one process, the default) | api (REST, WebSocket, dashboard) | ingest (MQTT "
            "workers) | worker (rollouts, retention, alarms; one leader). Default: EDGEFLEET_ROLE or all. "
            "Split roles need PostgreSQL, an external broker and EDGEFLEET_REDIS_URL (docs/scaling.md)."
        ),
    ] = None,
) -> None:
    """Start the server (API, MQTT ingest, embedded broker by default)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from edgefleet.dashboard import create_dashboard_app
    from edgefleet.server import ServerError, create_app

    settings = _with_secrets(
        _settings(db_url=db, broker=broker, demo=demo, embedded_port=mqtt_port, role=role)
    )
    if "public_url" not in settings.model_fields_set:  # model manifests point devices at this server
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        settings = settings.model_copy(update={"public_url": f"http://{reachable}:{port}"})
    try:
        settings.require_safe(http_host=host)
        ui = dashboard and settings.role in ("all", "api")  # ingest and worker: health and metrics
        app = create_dashboard_app(settings) if ui else create_app(settings)
    except ServerError as err:
        fail(str(err), code=2)
    if settings.demo and not settings.loopback_only(host):
        console.print(
            f"[yellow]demo mode on {host}: anyone who reaches it may sign up an organization[/yellow]"
        )
    served = "dashboard at /, API docs at /docs" if ui else "API docs at /docs"
    if settings.role in ("ingest", "worker"):
        served = "/healthz, /readyz, /metrics"
    console.print(
        f"edgefleet server ({settings.role}) on http://{host}:{port} ({served}), broker: {settings.broker}"
    )
    uvicorn.run(app, host=host, port=port, log_config=None, **settings.uvicorn_proxy_options())


def _with_secrets(settings: Any) -> Any:
    """The settings with generated secrets for those not given (EDGEFLEET_SECRET_KEY,
    EDGEFLEET_INGEST_PASSWORD): made on the first start, kept 0600 in `settings.generated_secrets_path`
    and reused after. The built-in defaults are never used."""
    from pydantic import SecretStr

    from edgefleet.server.security import SECRET_FIELDS, SecretsFileError, load_or_create_secrets

    missing = [name for name in SECRET_FIELDS if name not in settings.model_fields_set]
    if not missing:
        return settings
    path = settings.generated_secrets_path.resolve()
    try:
        stored, created = load_or_create_secrets(path)
    except SecretsFileError as err:
        fail(str(err), code=2)
    names = ", ".join(f"EDGEFLEET_{name.upper()}" for name in missing)
    if created:
        log.warning(
            "generated %s into %s (mode 0600); keep it with the database: the organizations' model "
            "signing keys are sealed with the secret key",
            names,
            path,
        )
        console.print(f"generated {names} into {path} (0600; keep it with the database)")
    else:
        log.info("using %s from %s", names, path)
    return settings.model_copy(update={name: SecretStr(stored[name]) for name in missing})


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create or upgrade the database schema (the server also does this when it starts)."""
    from edgefleet.server import ServerError
    from edgefleet.server.admin import migrate as run_migrations

    settings = _settings(db_url=db, broker="none")
    try:
        run_migrations(settings.db_url)
    except ServerError as err:
        fail(str(err))
    console.print(f"database at {settings.db_url} is up to date")


@app.command()
def certs(
    out: Annotated[Path, typer.Option(help="Directory for the PEM files.")] = Path("certs"),
    host: Annotated[list[str] | None, typer.Option(help="Broker host name or IP (repeatable).")] = None,
    device: Annotated[
        list[str] | None, typer.Option(help="Device id to issue a client certificate for.")
    ] = None,
) -> None:
    """Make a CA, a server and device certificates for trying out TLS (mqtts://)."""
    from edgefleet.contracts import ContractError
    from edgefleet.server.certs import make_certificates

    try:
        issued = make_certificates(out, host or ["localhost", "127.0.0.1"], device or [])
    except (ContractError, OSError) as err:
        fail(str(err))
    for name, pair in issued.items():
        console.print(f"{name}: {pair.cert} {pair.key}")


user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="The user's email (their login).")],
    organization: Annotated[str, typer.Option(help="Organization name; created (user = owner) if new.")],
    role: Annotated[
        str, typer.Option(help="owner | admin | viewer (for an existing organization).")
    ] = "viewer",
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters."),
    ] = "",
    db: DbOption = None,
) -> None:
    """Create a user in an organization."""
    from edgefleet.server import ServerError
    from edgefleet.server.admin import create_user

    if role not in ("owner", "admin", "viewer"):
        fail(f"role must be owner, admin or viewer, not {role!r}", code=2)
    if len(password) < 10:
        fail("the password needs at least 10 characters", code=2)
    settings = _settings(db_url=db, broker="none")
    try:
        created = create_user(settings.db_url, email, password, role, organization)
    except ServerError as err:
        fail(str(err))
    console.print(
        f"user {created.user_id} ({email}) is {created.role} of {created.org_name!r} (org {created.org_id})"
    )
