"""The app factory: `create_app(settings)` builds a FastAPI app; its lifespan runs ingest and broker.

The server starts and serves its API and dashboard while the database or the broker is down: it says
so on `/healthz` and `/readyz` (`health.py`), migrates and starts the ingest once the database
answers, and the ingest connects once the broker does.
"""

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, SQLAlchemyError

from edgefleet.server.api import browser_security
from edgefleet.server.api.routes import (
    alarms,
    auth,
    devices,
    drift,
    events,
    models,
    notifications,
    organization,
    ota,
    rollouts,
    samples,
    stats,
    stream,
    telemetry,
    users,
)
from edgefleet.server.api.routes import metrics as metrics_route
from edgefleet.server.context import ServerContext
from edgefleet.server.db import faults, make_engine, make_sessionmaker, upgrade
from edgefleet.server.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from edgefleet.server.health import Health
from edgefleet.server.hub import Hub
from edgefleet.server.metrics import Metrics
from edgefleet.server.notify import loop as notify_loop
from edgefleet.server.notify import web as notify_web
from edgefleet.server.notify.config import ChannelConfigError
from edgefleet.server.ratelimit import LimiterUnavailableError, LoginRateLimiter
from edgefleet.server.security import WeakPasswordError
from edgefleet.server.services.queries import BadQueryError
from edgefleet.server.settings import ServerSettings

if TYPE_CHECKING:
    from edgefleet.server.cluster.redis_hub import RedisHub
    from edgefleet.server.runtime import MqttRuntime

log = logging.getLogger(__name__)
try:
    __version__ = version("edgefleet")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
API_PREFIX = "/api/v1"
START_RETRY_MAX_S = 10.0
"""Backoff cap of the start-up's attempts to reach the database (and to start the ingest)."""
_STATUS = {
    WeakPasswordError: 422,  # a ConflictError for the dashboard's forms; the API says 422
    LimiterUnavailableError: 503,
    NotFoundError: 404,
    ConflictError: 409,
    AuthError: 401,
    PermissionDeniedError: 403,
    RateLimitedError: 429,
    BadQueryError: 400,
    ChannelConfigError: 422,
}


def _operation_id(route: APIRoute) -> str:
    return route.name


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for module in (
        auth,
        organization,
        users,
        devices,
        events,
        telemetry,
        stats,
        alarms,
        stream,
        models,
        ota,
        rollouts,
        drift,
        samples,
        notifications,
    ):
        router.include_router(module.router)
    return router


async def _server_error(_request: Request, err: Exception) -> Response:
    status = next((code for cls, code in _STATUS.items() if isinstance(err, cls)), 500)
    headers = {"Retry-After": f"{err.retry_after:.0f}"} if isinstance(err, RateLimitedError) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if status == 500:
        log.error("unhandled server error: %s", err)
    return JSONResponse({"detail": _json_safe(str(err))}, status_code=status, headers=headers)


# --- bad input: a 4xx that says what is wrong, never a 500 ------------------------------------------
def _json_safe(value: Any) -> Any:
    """`value` with what JSON cannot carry made printable: NaN and infinities (Python's JSON parser
    accepts them, so a 422 echoing them could not be sent) and unpaired surrogates."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(_request: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    return JSONResponse({"detail": _json_safe(jsonable_encoder(err.errors()))}, status_code=422)


async def _out_of_range(request: Request, err: Exception) -> Response:
    """What validation let through but the database or the calendar cannot hold (a number past 64
    bits, a date before year 1 once converted): the request's fault."""
    log.info("%s %s: a value is out of range (%s)", request.method, request.url.path, err)
    return JSONResponse({"detail": f"a value in the request is out of range: {err}"}, status_code=422)


async def _not_unicode(request: Request, err: Exception) -> Response:
    log.info("%s %s: text that is not valid Unicode (%s)", request.method, request.url.path, err)
    return JSONResponse(
        {"detail": "the request has text that is not valid Unicode (an unpaired surrogate)"}, status_code=422
    )


async def _database_refused_value(request: Request, err: Exception) -> Response:
    """The database refused a value of the request (PostgreSQL: a NUL character in text, a number or
    time out of its range): 422, not a 500."""
    log.info("%s %s: the database refused a value: %s", request.method, request.url.path, err.args[:1])
    return JSONResponse(
        {"detail": "the database cannot store a value of this request (out of range or not text)"},
        status_code=422,
    )


def _database_errors() -> Callable[[Request, Exception], Awaitable[Response]]:
    """A request the database cannot serve now (down, read-only, not migrated yet) is a 503 to retry,
    not a 500 with a traceback per request."""
    errors = faults.ErrorLog(log, every_s=30.0)

    async def handle(_request: Request, err: Exception) -> Response:
        diagnosis = faults.diagnose(err)
        if not diagnosis.retry:
            errors(diagnosis.kind, "unhandled database error: %s", diagnosis.detail, level=logging.ERROR)
            return JSONResponse({"detail": "internal server error"}, status_code=500)
        errors(
            diagnosis.kind, "the database cannot serve a request (%s: %s)", diagnosis.kind, diagnosis.detail
        )
        return JSONResponse(
            {"detail": f"the database is unavailable ({diagnosis.kind}); try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return handle


def build_context(settings: ServerSettings) -> ServerContext:
    engine = make_engine(settings.db_url)
    faults.watch(engine)  # replace connections to a read-only standby or a shut-down server
    return ServerContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        limiter=LoginRateLimiter(
            settings.login_limits,
            settings.login_limits_per_address,
            settings.login_limits_per_account,
            settings.signup_limits,
            storage_url=settings.limiter_storage_url,
            prefix=settings.ratelimit_prefix,
            memory_max_keys=settings.ratelimit_memory_max_keys,
        ),
        hub=_hub(settings),
        metrics=Metrics(),
    )


def _hub(settings: ServerSettings) -> "Hub | RedisHub":
    """The live stream: in this process, or over Redis to every API process (REDIS_URL)."""
    if settings.redis_url:
        from edgefleet.server.cluster.redis_hub import RedisHub

        return RedisHub(settings.redis_url, settings.redis_prefix, settings.stream_buffer)
    return Hub(settings.stream_buffer)


def _backoff(attempt: int, cap: float = START_RETRY_MAX_S) -> float:
    return float(min(cap, 0.5 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0))


async def _migrate(context: ServerContext, health: Health) -> bool:
    """One attempt to reach and migrate the database. False when it cannot be reached now; raises
    when waiting cannot help (a migration the data makes fail)."""
    try:
        await asyncio.to_thread(upgrade, context.engine)
    except Exception as err:
        diagnosis = faults.diagnose(err)
        if not diagnosis.retry:
            raise
        health.database_error = f"{diagnosis.kind}: {diagnosis.detail}"
        return False
    health.schema_ready, health.database_error = True, None
    return True


async def _start_later(context: ServerContext, health: Health, runtime: "MqttRuntime") -> None:
    """The database was not there at start: keep trying (backoff up to 10 s), then migrate and start
    the ingest, which connects to its broker whenever that is there."""
    from edgefleet.server.runtime import start_mqtt, stop_mqtt

    started, attempt = time.monotonic(), 0
    errors = faults.ErrorLog(log, every_s=60.0)
    while True:
        errors(
            "database",
            "the database is not reachable (%s); serving degraded, retrying",
            health.database_error,
        )
        attempt += 1
        await asyncio.sleep(_backoff(attempt))
        try:
            if await _migrate(context, health):
                break
        except Exception as err:  # the schema cannot be migrated: an operator must look; stay degraded
            health.database_error = f"migrating failed: {faults.diagnose(err).detail}"
            errors("migration", "migrating the database failed", level=logging.ERROR, exc_info=True)
    log.warning(
        "the database is reachable and migrated after %.1f s; starting the ingest", time.monotonic() - started
    )
    attempt = 0
    while True:
        try:
            await start_mqtt(context, runtime)
            health.mqtt_error = None
            return
        except Exception as err:
            await stop_mqtt(runtime)
            attempt += 1
            health.mqtt_error = str(err)
            errors("mqtt", "starting the MQTT side failed (%s); retrying", err)
            await asyncio.sleep(_backoff(attempt))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    from edgefleet.server.cluster.loops import leadership_for, start_loops
    from edgefleet.server.cluster.shared import start_shared, stop_shared
    from edgefleet.server.runtime import MqttRuntime, start_mqtt, stop_mqtt

    context: ServerContext = app.state.edgefleet
    health: Health = app.state.health
    settings = context.settings
    settings.require_safe()
    context.hub.bind(asyncio.get_running_loop())
    shared = await start_shared(context)  # Redis: the stream's reader (API), cache invalidation
    runtime = health.mqtt = MqttRuntime()
    health.leadership = leadership = leadership_for(context)
    tasks: list[asyncio.Task[None]] = []
    if await _migrate(context, health):
        await start_mqtt(context, runtime)
    else:
        tasks.append(asyncio.create_task(_start_later(context, health, runtime)))
    tasks += start_loops(context, health, leadership)  # those of this process's role (all: every one)
    notifier = notify_loop.start(context, health)  # the notification outbox's sender (server/notify)
    try:
        yield
    finally:
        await notify_loop.stop(notifier)
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(leadership.release)
        await stop_mqtt(runtime)
        await stop_shared(shared)
        context.hub.bind(None)
        context.engine.dispose()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the server app. Mount more routers or pages on the result (the dashboard does)."""
    settings = settings or ServerSettings()
    app = FastAPI(
        title="edgefleet",
        version=__version__,
        summary="Devices, events, telemetry and alarms of an edgefleet installation.",
        lifespan=_lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.edgefleet = context = build_context(settings)
    app.state.health = health = Health(context)
    app.add_exception_handler(ServerError, _server_error)
    app.add_exception_handler(SQLAlchemyError, _database_errors())
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
    app.add_exception_handler(DataError, _database_refused_value)
    browser_security.install(app, settings)  # CSRF origin check, security headers, no tokens in logs
    if settings.role in ("all", "api"):  # ingest and worker processes serve health and metrics only
        app.include_router(api_router())
    app.include_router(metrics_route.router)  # /metrics: scrape token or admin
    app.include_router(notify_web.router)  # /notify: acknowledge links, Web Push scripts

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: 200 while the process serves; `status` says `ok` or `degraded` (see /readyz)."""
        return {"status": (await health.report())["status"]}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Readiness: 200 when the database and the ingest work, 503 (degraded) with the reason per
        component otherwise."""
        report = await health.report()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app
