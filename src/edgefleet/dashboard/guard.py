"""Page guard: a signed-out visitor is sent to the login page (and back afterwards)."""

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from edgefleet.dashboard.session import Viewer, viewer_of
from edgefleet.server.context import ServerContext


async def signed_in(context: ServerContext, request: Request) -> Viewer | RedirectResponse:
    viewer = await viewer_of(context, request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return viewer


Render = Callable[[ServerContext, Viewer], Awaitable[None]]


def signed_in_page(context: ServerContext, path: str, render: Render) -> None:
    """Register `render` as the page at `path` for signed-in users; anyone else logs in first."""

    async def page(request: Request) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        await render(context, viewer)
        return None

    page.__name__ = f"{render.__module__.rsplit('.', 1)[-1]}_page"
    ui.page(path)(page)
