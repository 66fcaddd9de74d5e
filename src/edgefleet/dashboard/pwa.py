"""The dashboard as an installable app: manifest, icons, offline page and service worker.

The service worker is served from the root (`/sw.js`) so its scope is the whole dashboard. It caches
only the static shell listed in SHELL (the offline page, the manifest, the icons), never a page,
an API response, a sign-in form or anything else that belongs to a user: every page is fetched from
the network, and when the network (or the server) is out of reach the offline page says so, rather
than showing yesterday's alarms as if they were now. It also shows Web Push notifications (issue 21)
and opens their link, on this server only, when one is tapped."""

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from edgefleet.dashboard.icons import SIZES, Purpose, icon_png

NAME = "edgefleet"
THEME_LIGHT = "#1e40af"
THEME_DARK = "#0b1220"
SHELL = (
    "/offline.html",
    "/manifest.webmanifest",
    *(f"/icons/icon-{size}.png" for size in SIZES),
    *(f"/icons/maskable-{size}.png" for size in SIZES),
)
"""Everything the service worker may cache: static, the same for every user."""

router = APIRouter(include_in_schema=False)


def manifest() -> dict[str, Any]:
    icons = [
        {
            "src": f"/icons/{name}-{size}.png",
            "sizes": f"{size}x{size}",
            "type": "image/png",
            "purpose": purpose,
        }
        for name, purpose in (("icon", "any"), ("maskable", "maskable"))
        for size in SIZES
    ]
    return {
        "name": "edgefleet: devices and alarms",
        "short_name": NAME,
        "description": "Edge AI devices, their alarms and why they fired.",
        "id": "/",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "orientation": "any",
        "background_color": "#f8fafc",
        "theme_color": THEME_LIGHT,
        "icons": icons,
        "shortcuts": [{"name": "Open alarms", "url": "/alarms", "icons": icons[:1]}],
    }


STATIC = files("edgefleet.dashboard") / "static"
OFFLINE_HTML = (STATIC / "offline.html").read_text(encoding="utf-8")
_SW_TEMPLATE = (STATIC / "sw.js").read_text(encoding="utf-8")


def _release() -> str:
    try:
        return version("edgefleet")
    except PackageNotFoundError:
        return "unknown"


def service_worker() -> str:
    """The worker's source; its cache name changes with the release and the shell, so an upgrade
    drops the previous release's cache."""
    tag = hashlib.sha256(f"{_release()} {SHELL} {OFFLINE_HTML}".encode()).hexdigest()[:12]
    return _SW_TEMPLATE.replace("__VERSION__", tag).replace("__SHELL__", json.dumps(list(SHELL)))


HEAD_HTML = f"""
<link rel="manifest" href="/manifest.webmanifest">
<link rel="apple-touch-icon" href="/icons/icon-192.png">
<meta name="theme-color" content="{THEME_LIGHT}" media="(prefers-color-scheme: light)">
<meta name="theme-color" content="{THEME_DARK}" media="(prefers-color-scheme: dark)">
<meta name="color-scheme" content="light dark">
<script>
  if ("serviceWorker" in navigator) {{
    window.addEventListener("load", () => {{
      navigator.serviceWorker.register("/sw.js", {{scope: "/"}}).catch(() => {{}});
    }});
  }}
</script>
"""
"""What every dashboard page puts in its head: the manifest, icons, theme colours, the worker."""

_NO_CACHE = {"Cache-Control": "no-cache"}  # the browser revalidates: a new release reaches it at once


@router.get("/manifest.webmanifest")
def manifest_route() -> Response:
    return Response(json.dumps(manifest()), media_type="application/manifest+json", headers=_NO_CACHE)


@router.get("/sw.js")
def service_worker_route() -> Response:
    return Response(service_worker(), media_type="text/javascript", headers=_NO_CACHE)


@router.get("/offline.html")
def offline_route() -> HTMLResponse:
    return HTMLResponse(OFFLINE_HTML, headers=_NO_CACHE)


@router.get("/icons/{name}-{size}.png")
def icon_route(name: str, size: int) -> Response:
    purposes: dict[str, Purpose] = {"icon": "any", "maskable": "maskable"}
    if name not in purposes or size not in SIZES:
        raise HTTPException(404, "no such icon")
    return Response(
        icon_png(size, purposes[name]),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )
