"""The app factory: `create_app(settings)` builds a FastAPI app; its lifespan runs ingest and broker."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from edgefleet.server.api.routes import (
    alarms,
    auth,
    devices,
    drift,
    events,
    models,
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
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from edgefleet.server.hub import Hub
from edgefleet.server.metrics import Metrics
from edgefleet.server.ratelimit import LoginRateLimiter
from edgefleet.server.services import alarms as alarm_service
from edgefleet.server.services import retention
from edgefleet.server.services.queries import BadQueryError
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)
try:
    __version__ = version("edgefleet")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
API_PREFIX = "/api/v1"
_STATUS = {
    NotFoundError: 404,
    ConflictError: 409,
    AuthError: 401,
    PermissionDeniedError: 403,
    RateLimitedError: 429,
    BadQueryError: 400,
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
    return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)


def build_context(settings: ServerSettings) -> ServerContext:
    engine = make_engine(settings.db_url)
    return ServerContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        limiter=LoginRateLimiter(
            settings.login_max_failures_per_account,
            settings.login_max_failures_per_address,
            settings.login_window_s,
        ),
        hub=Hub(settings.stream_buffer),
        metrics=Metrics(),
    )


async def _maintenance_loop(context: ServerContext) -> None:
    """Auto-clear alarms every `alarm_check_interval_s`; purge expired rows every `retention_interval_s`."""
    settings = context.settings
    last_purge = 0.0

    def clear_once() -> None:
        with transaction(context.sessions) as session:
            for alarm in alarm_service.auto_clear(session, settings.alarm_clear_after_s):
                data = {"change": "cleared", "id": alarm.id, "device_id": alarm.device_id, "kind": alarm.kind}
                context.hub.publish(alarm.org_id, "alarm", {**data, "clear_reason": "auto"})

    def purge_once() -> None:
        with transaction(context.sessions) as session:
            purged = retention.purge_expired(session)
        if purged.events or purged.telemetry:
            log.info("retention: deleted %d events and %d telemetry rows", purged.events, purged.telemetry)

    while True:
        await asyncio.sleep(settings.alarm_check_interval_s)
        try:
            await asyncio.to_thread(clear_once)
            if time.monotonic() - last_purge >= settings.retention_interval_s:
                last_purge = time.monotonic()
                await asyncio.to_thread(purge_once)
        except Exception:
            log.exception("alarm auto-clear or retention purge failed")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    from edgefleet.server.rollout_engine import engine_for, run_engine
    from edgefleet.server.runtime import start_mqtt, stop_mqtt

    context: ServerContext = app.state.edgefleet
    context.settings.require_safe()
    await asyncio.to_thread(upgrade, context.engine)
    context.hub.bind(asyncio.get_running_loop())
    mqtt = await start_mqtt(context)
    clearer = asyncio.create_task(_maintenance_loop(context))
    rollouts_task = asyncio.create_task(
        run_engine(engine_for(context, context.settings.public_url), context.settings.rollout_interval_s)
    )
    try:
        yield
    finally:
        for task in (rollouts_task, clearer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stop_mqtt(mqtt)
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
    app.state.edgefleet = build_context(settings)
    app.add_exception_handler(ServerError, _server_error)
    app.include_router(api_router())
    app.include_router(metrics_route.router)  # /metrics: scrape token or admin

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
