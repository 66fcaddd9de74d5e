"""Rollouts: staged model updates, their stages and devices; pause, resume, abort."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.layout import frame
from edgefleet.server.context import ServerContext


def register(context: ServerContext) -> None:
    @ui.page("/rollouts")
    async def rollouts_page(request: Request) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        with frame(viewer, "Rollouts"):
            ui.label("Nothing here yet.").classes("ef-muted")
        return None
