"""The model registry: versions, model cards, compare, default per device kind, upload."""

from collections.abc import Awaitable, Callable
from itertools import groupby

from nicegui import events, ui
from sqlalchemy.orm import Session

from edgefleet.contracts.model_package import MAX_PACKAGE_BYTES
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import frame, stamp
from edgefleet.dashboard.pages.model_views import card_view, comparison_view, key_metrics
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.schemas import ModelComparison, ModelDetail, ModelPublic
from edgefleet.server.services import registry
from edgefleet.server.services.registry import ModelUpload

UPLOAD_FILES = ("model.tflite", "model_card.json", "report.json", "self_test.json")
Action = Callable[[int], Awaitable[None]]
_PICKER_HEADER = """
<div class="row items-center no-wrap q-pa-sm q-gutter-sm full-width">
  <q-btn unelevated no-caps color="primary" icon="folder_open" label="Choose files"
         :disable="!props.canAddFiles" @click="props.pickFiles" />
  <input class="q-uploader__input" type="file" multiple accept=".tflite,.json" hidden
         @change="props.addFiles($event.target.files); $event.target.value = ''" />
  <div class="col text-caption">model.tflite, model_card.json (report.json, self_test.json)</div>
</div>
"""


def register(context: ServerContext) -> None:
    signed_in_page(context, "/models", _render)


def _list(session: Session, org_id: int) -> list[ModelPublic]:
    defaults = registry.defaults(session, org_id)
    return [registry.to_public(row, defaults) for row in registry.list_models(session, org_id)]


async def _render(context: ServerContext, viewer: Viewer) -> None:
    with frame(viewer, "Models"):
        if viewer.can("admin"):
            upload_box = ui.card().classes("w-full p-4 gap-2").props('data-testid="model-upload"')
        versions = ui.column().classes("w-full gap-3")
        detail_box = ui.column().classes("w-full")
        compare_bar = ui.row().classes("w-full items-center gap-2")
        compare_box = ui.column().classes("w-full")
    models: list[ModelPublic] = []

    async def refresh() -> None:
        models[:] = await in_db(context, lambda s: _list(s, viewer.org_id))
        versions.clear()
        with versions:
            if not models:
                ui.label("No models yet: push one with `edgefleet model push DIR --server URL`.").classes(
                    "ef-muted"
                ).props('data-testid="no-models"')
            for model_id, group in groupby(models, key=lambda m: m.model_id):
                _model_group(model_id, list(group), viewer, show, make_default)
        options = {m.id: f"{m.model_id} {m.version}" for m in models}
        pick_a.set_options(options, value=pick_a.value if pick_a.value in options else None)
        pick_b.set_options(options, value=pick_b.value if pick_b.value in options else None)

    async def show(model_pk: int) -> None:
        def work(session: Session) -> ModelDetail:
            row = registry.get_model(session, viewer.org_id, model_pk)
            return registry.to_detail(row, registry.defaults(session, viewer.org_id))

        try:
            detail = await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        detail_box.clear()
        with detail_box:
            card_view(detail)

    async def make_default(model_pk: int) -> None:
        def work(session: Session) -> ModelPublic:
            row = registry.set_default(session, principal_of(session, viewer), model_pk)
            return registry.to_public(row, registry.defaults(session, viewer.org_id))

        try:
            model = await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        ui.notify(
            f"{model.model_id} {model.version} is the default for {model.device_kind} devices",
            type="positive",
        )
        await refresh()

    async def compare() -> None:
        if pick_a.value is None or pick_b.value is None:
            ui.notify("choose two versions to compare", type="warning")
            return
        a, b = int(pick_a.value), int(pick_b.value)
        try:
            result: ModelComparison = await in_db(context, lambda s: registry.compare(s, viewer.org_id, a, b))
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        compare_box.clear()
        with compare_box:
            comparison_view(result)

    with compare_bar:
        ui.label("Compare").classes("font-semibold")
        pick_a = (
            ui.select({}, label="A")
            .props("outlined dense")
            .classes("w-full sm:w-64")
            .props('data-testid="compare-a"')
        )
        pick_b = (
            ui.select({}, label="B")
            .props("outlined dense")
            .classes("w-full sm:w-64")
            .props('data-testid="compare-b"')
        )
        ui.button("Compare", icon="compare_arrows", on_click=compare).props("outline no-caps").props(
            'data-testid="compare"'
        )
    if viewer.can("admin"):
        with upload_box:
            _upload_form(context, viewer, refresh)
    await refresh()


def _model_group(
    model_id: str, group: list[ModelPublic], viewer: Viewer, show: Action, make_default: Action
) -> None:
    group_card = ui.card().classes("w-full p-3 gap-1")
    group_card.props.update({"data-testid": "model-group", "data-model-id": model_id})
    with group_card:
        ui.label(model_id).classes("text-lg font-semibold ef-mono")
        for model in group:
            row = ui.row().classes("w-full items-center gap-x-3 gap-y-1 py-1 border-t ef-line")
            row.props.update({"data-testid": "model-row", "data-model-pk": str(model.id)})
            row.props["data-version"] = model.version
            with row:
                ui.label(model.version).classes("font-semibold ef-mono w-24")
                ui.label(model.device_kind).classes("w-20")
                ui.label(stamp(model.created_at)).classes("text-sm ef-muted sm:w-40")
                ui.label(f"key {model.key_id}").classes("text-xs ef-mono ef-muted")
                if model.is_default:
                    ui.badge("default", color="positive").props('data-testid="default-badge"')
                ui.label(key_metrics(model)).classes("text-sm")
                ui.space()
                ui.button("Card", on_click=lambda m=model: show(m.id)).props("flat dense no-caps").props(
                    'data-testid="show-card"'
                )
                if viewer.can("admin") and not model.is_default:
                    ui.button("Set default", on_click=lambda m=model: make_default(m.id)).props(
                        "outline dense no-caps"
                    ).props('data-testid="set-default"')


def _upload_form(context: ServerContext, viewer: Viewer, refresh: Callable[[], Awaitable[None]]) -> None:
    received: dict[str, bytes] = {}
    ui.label("Upload a model directory").classes("font-semibold")
    ui.label(
        "Select model.tflite and model_card.json (and, if you have them, report.json and self_test.json) "
        "from a directory the model factory exported."
    ).classes("text-sm ef-muted")
    chosen = ui.label("no files yet").classes("text-sm ef-mono").props('data-testid="upload-files"')

    async def on_file(event: events.UploadEventArguments) -> None:
        name = event.file.name
        if name not in UPLOAD_FILES:
            ui.notify(f"{name} is not one of {', '.join(UPLOAD_FILES)}", type="warning")
            return
        received[name] = await event.file.read()
        chosen.set_text(", ".join(sorted(received)))

    picker = ui.upload(multiple=True, auto_upload=True, max_file_size=MAX_PACKAGE_BYTES, on_upload=on_file)
    picker.props('accept=".tflite,.json" flat bordered').classes("w-full").props(
        'data-testid="upload-picker"'
    )
    # Quasar's own header is an unnamed icon button wrapping an unlabelled file input (axe: serious):
    # a named button and a hidden input of our own, which Quasar's pickFiles finds by its class.
    picker.add_slot("header", _PICKER_HEADER)

    async def submit() -> None:
        missing = [name for name in UPLOAD_FILES[:2] if name not in received]
        if missing:
            ui.notify(f"still needed: {', '.join(missing)}", type="warning")
            return
        upload = ModelUpload(
            tflite=received["model.tflite"],
            card_json=received["model_card.json"],
            report_json=received.get("report.json"),
            self_test_json=received.get("self_test.json"),
        )

        def work(session: Session) -> ModelPublic:
            row = registry.upload_model(
                session, principal_of(session, viewer), upload, secret=context.settings.secret_key
            )
            return registry.to_public(row, registry.defaults(session, viewer.org_id))

        try:
            model = await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative", multi_line=True)
            return
        received.clear()
        chosen.set_text("no files yet")
        picker.reset()
        ui.notify(f"{model.model_id} {model.version} added, signed with key {model.key_id}", type="positive")
        await refresh()

    ui.button("Add to registry", icon="upload", on_click=submit).props("unelevated no-caps").props(
        'data-testid="upload-submit"'
    )
