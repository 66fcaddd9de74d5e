"""Page guard: a signed-out visitor is sent to the login page (and back afterwards)."""

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from edgefleet.dashboard.session import Viewer, viewer_of
from edgefleet.server.context import ServerContext


async def signed_in(context: ServerContext, request: Request) -> Viewer | RedirectResponse:
    viewer = await viewer_of(context, request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return viewer
