"""Rollouts: staged model updates, their stages and devices; create, pause, resume, abort (admins)."""

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefleet.dashboard.guard import signed_in, signed_in_page
from edgefleet.dashboard.layout import frame
from edgefleet.dashboard.pages.rollout_views import device_table, stage_bars, state_chip, summary_line
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Rollout
from edgefleet.server.errors import NotFoundError, ServerError
from edgefleet.server.schemas import RolloutCreate, RolloutDetail
from edgefleet.server.services import registry, rollouts

REFRESH_S = 5.0
TARGETS = {"device_kind": "all of a kind", "tag": "devices with a tag", "device_ids": "a list of devices"}


def register(context: ServerContext) -> None:
    signed_in_page(context, "/rollouts", _render_list)

    @ui.page("/rollouts/{rollout_id}")
    async def rollout_page(request: Request, rollout_id: int) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        await _render_detail(context, viewer, rollout_id)
        return None


def _details(session: Session, org_id: int) -> list[RolloutDetail]:
    return [rollouts.detail(session, r) for r in rollouts.list_rollouts(session, org_id, 50)]


async def _render_list(context: ServerContext, viewer: Viewer) -> None:
    with frame(viewer, "Rollouts"):
        if viewer.can("admin"):
            await _create_form(context, viewer)
        body = ui.column().classes("w-full gap-3")

    async def refresh() -> None:
        items = await in_db(context, lambda s: _details(s, viewer.org_id))
        body.clear()
        with body:
            if not items:
                ui.label("No rollouts yet.").classes("ef-muted").props('data-testid="no-rollouts"')
            for item in items:
                _rollout_card(item)

    await refresh()
    ui.timer(REFRESH_S, refresh, immediate=False)


def _rollout_card(item: RolloutDetail) -> None:
    with ui.link(target=f"/rollouts/{item.id}").classes("ef-cardlink no-underline block w-full"):
        card = ui.card().classes("w-full p-3 gap-2 ef-card")  # a link: reachable by keyboard too
    card.props.update({"data-testid": "rollout-card", "data-rollout-id": str(item.id)})
    with card:
        with ui.row().classes("w-full items-center gap-3"):
            ui.label(f"#{item.id}").classes("ef-mono ef-muted")
            ui.label(f"{item.model_id} {item.model_version}").classes("font-semibold")
            state_chip(item.state)
            ui.space()
            ui.label(summary_line(item)).classes("text-xs ef-muted")
        stage_bars(item.stage_summary)
        if item.reason:
            ui.label(item.reason).classes("text-sm").props('data-testid="rollout-reason"')


async def _create_form(context: ServerContext, viewer: Viewer) -> None:
    models = await in_db(context, lambda s: registry.list_models(s, viewer.org_id))
    options = {m.id: f"{m.model_id} {m.version} ({m.device_kind})" for m in models}
    with (
        ui.expansion("New rollout", icon="add")
        .classes("w-full ef-surface rounded shadow-sm")
        .props('data-testid="new-rollout"')
    ):
        if not options:
            ui.label("Upload a model on the Models page first.").classes("ef-muted")
            return
        with ui.row().classes("w-full gap-3 items-end"):
            model = ui.select(options, label="Model version", value=next(iter(options)))
            model.props('outlined dense data-testid="rollout-model"').classes("w-full sm:w-auto sm:min-w-64")
            kind = ui.select(TARGETS, label="Target", value="device_kind")
            kind.props('outlined dense data-testid="rollout-target-kind"').classes(
                "w-full sm:w-auto sm:min-w-48"
            )
            value = ui.input("Kind, tag or device ids (comma separated)", value="vibration")
            value.props('outlined dense data-testid="rollout-target-value"').classes(
                "w-full sm:w-auto sm:min-w-72"
            )
        with ui.row().classes("w-full gap-3 items-end"):
            stages = ui.input("Stages (cumulative %)", value="5, 25, 100")
            stages.props('outlined dense data-testid="rollout-stages"')
            gate = ui.number("Health gate (s)", value=300, min=0, format="%.0f")
            gate.props('outlined dense data-testid="rollout-gate"')
            timeout = ui.number("Device timeout (s)", value=900, min=1, format="%.0f")
            timeout.props('outlined dense data-testid="rollout-timeout"')
            failures = ui.number("Failures allowed", value=0, min=0, format="%.0f")
            failures.props('outlined dense data-testid="rollout-max-failures"')
            rollback = ui.checkbox("Roll back automatically", value=True).props(
                'data-testid="rollout-auto-rollback"'
            )
            start = ui.button("Start rollout", icon="rocket_launch").props(
                'unelevated no-caps data-testid="create-rollout"'
            )

    def body() -> RolloutCreate:
        text = str(value.value or "").strip()
        target: dict[str, object] = {kind.value: text}
        if kind.value == "device_ids":
            target = {"device_ids": [t.strip() for t in text.split(",") if t.strip()]}
        return RolloutCreate.model_validate(
            {
                "model_pk": model.value,
                "target": target,
                "stages": [int(s) for s in str(stages.value or "").replace(" ", "").split(",") if s],
                "gate_s": float(gate.value or 0),
                "device_timeout_s": float(timeout.value or 0),
                "max_failures": int(failures.value or 0),
                "auto_rollback": bool(rollback.value),
            }
        )

    async def submit() -> None:
        try:
            create = body()
        except (ValidationError, ValueError) as err:
            message = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
            ui.notify(f"cannot start: {message}", type="negative")
            return

        def work(session: Session) -> int:
            return rollouts.create_rollout(session, principal_of(session, viewer), create).id

        try:
            rollout_id = await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        context.hub.publish(viewer.org_id, "rollout", {"change": "created", "id": rollout_id})
        ui.navigate.to(f"/rollouts/{rollout_id}")

    start.on_click(submit)


async def _render_detail(context: ServerContext, viewer: Viewer, rollout_id: int) -> None:
    with frame(viewer, f"Rollout {rollout_id}"):
        ui.link("← all rollouts", "/rollouts").classes("text-sm")
        body = ui.column().classes("w-full gap-3")
        dialogs = ui.element("div")
    busy = {"dialog": False}

    async def act(change: Callable[[Session, Viewer], Rollout], label: str) -> None:
        def work(session: Session) -> None:
            rollout = change(session, viewer)
            context.hub.publish(*rollouts.event(rollout, label))

        try:
            await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        ui.notify(f"rollout {rollout_id} {label}", type="positive")
        await refresh()

    async def ask_abort() -> None:
        with dialogs, ui.dialog() as dialog, ui.card().classes("w-full max-w-sm"):
            ui.label(f"Abort rollout {rollout_id}?").classes("font-semibold")
            ui.label("Commands in flight are cancelled; no further device gets the model.").classes("text-sm")
            rollback = ui.checkbox("Also roll back the devices it updated").props(
                'data-testid="abort-rollback"'
            )
            with ui.row().classes("justify-end w-full"):
                ui.button("Keep going", on_click=dialog.close).props("flat no-caps")
                ui.button("Abort", on_click=lambda: dialog.submit(bool(rollback.value))).props(
                    'unelevated no-caps color=negative data-testid="confirm-abort"'
                )
        busy["dialog"] = True
        try:
            choice = await dialog
        finally:
            busy["dialog"] = False
            dialog.delete()
        if choice is None:
            return
        await act(
            lambda s, v: rollouts.abort(s, principal_of(s, v), rollout_id, bool(choice)),
            "aborted",
        )

    async def refresh() -> None:
        try:
            detail = await in_db(
                context, lambda s: rollouts.detail(s, rollouts.get_rollout(s, viewer.org_id, rollout_id))
            )
        except NotFoundError:
            body.clear()
            with body:
                ui.label(f"No rollout {rollout_id}.").classes("ef-muted").props('data-testid="no-rollout"')
            return
        body.clear()
        with body:
            card = ui.card().classes("w-full p-4 gap-3")
            card.props.update({"data-testid": "rollout-detail", "data-rollout-id": str(rollout_id)})
        with card:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(f"{detail.model_id} {detail.model_version}").classes("text-lg font-semibold")
                state_chip(detail.state)
                ui.space()
                if viewer.can("admin"):
                    _buttons(detail, act, ask_abort)
            ui.label(summary_line(detail)).classes("text-sm ef-muted")
            if detail.reason:
                ui.label(detail.reason).classes("text-sm").props('data-testid="rollout-reason"')
            stage_bars(detail.stage_summary)
            device_table(detail)

    async def refresh_unless_busy() -> None:
        if not busy["dialog"]:
            await refresh()

    await refresh()
    ui.timer(REFRESH_S, refresh_unless_busy, immediate=False)


def _buttons(detail: RolloutDetail, act: Callable[..., object], ask_abort: Callable[[], object]) -> None:
    rollout_id = detail.id
    if detail.state == "running":
        ui.button(
            "Pause",
            icon="pause",
            on_click=lambda: act(lambda s, v: rollouts.pause(s, principal_of(s, v), rollout_id), "paused"),
        ).props('outline no-caps dense data-testid="rollout-pause"')
    if detail.state == "paused":
        ui.button(
            "Resume",
            icon="play_arrow",
            on_click=lambda: act(lambda s, v: rollouts.resume(s, principal_of(s, v), rollout_id), "resumed"),
        ).props('outline no-caps dense data-testid="rollout-resume"')
    if detail.state in ("running", "paused", "halted"):
        ui.button("Abort", icon="stop", on_click=ask_abort).props(
            'outline no-caps dense color=negative data-testid="rollout-abort"'
        )
