"""The model registry: versions, model cards, compare, default per device kind, upload."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.layout import frame
from edgefleet.server.context import ServerContext


def register(context: ServerContext) -> None:
    @ui.page("/models")
    async def models_page(request: Request) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        with frame(viewer, "Models"):
            ui.label("Nothing here yet.").classes("ef-muted")
        return None
