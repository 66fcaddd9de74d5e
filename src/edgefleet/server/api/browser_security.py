"""What a browser needs to be safe with this server (issue 18, finding 7):

- **Cross-site request forgery**: a state-changing request (POST, PUT, PATCH, DELETE) that a browser
  authenticates by its session cookie, and every sign-in form post (`/ui/...`), must come from this
  server's own pages: its `Origin` (else its `Referer`) is the request's own origin, `public_url`'s,
  or one of `trusted_origins`; anything else is 403. Requests with `Authorization: Bearer` (a session
  token or an API key) are exempt: a browser never adds a bearer token to a request by itself.
  A WebSocket handshake with the session cookie is held to the same rule (cross-site WebSocket
  hijacking of `/api/v1/stream`).
- **Security headers** on every response: a Content-Security-Policy (no framing; scripts, styles,
  images and connections from this origin only, inline allowed), `X-Frame-Options`,
  `X-Content-Type-Options`, `Referrer-Policy`,
  `Cross-Origin-Opener-Policy`, and `Strict-Transport-Security` over TLS.
- **Secrets in URLs stay out of the logs**: the stream's `?token=` (and `?ticket=`) is redacted in
  uvicorn's access and WebSocket log lines.

NiceGUI renders its pages with inline scripts and evaluates element props as JavaScript, so the
dashboard's CSP has to allow 'unsafe-inline' and 'unsafe-eval' for scripts: it limits where a page
may load from, post to, connect to and be framed by, not which inline code runs. Escaping what users
and devices write (never interpolating it into props, HTML or JavaScript) is the XSS defence.
"""

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_PREFIX = "/ui/"
"""The dashboard's sign-in forms (login, sign-up, invite, logout): checked with or without a cookie
(a forged login signs the victim into the attacker's account)."""

_DASHBOARD_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "connect-src 'self'; "
    "media-src 'self' blob:; "
    "worker-src 'self' blob:; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
_DOCS_CSP = (  # FastAPI's /docs and /redoc load Swagger UI / ReDoc from jsDelivr
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; "
    "worker-src 'self' blob:; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]`, lower case, default ports dropped; None for anything that is not an
    http(s) origin (including the opaque `null`)."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or ""), parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


class BrowserSecurity:
    """Pure ASGI middleware (it must not buffer the dashboard's responses or break WebSockets)."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.cookie_name = settings.cookie_name
        configured = [settings.public_url, *settings.trusted_origins]
        self.trusted = {o for o in (origin_of(u) for u in configured) if o}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await _forbidden(send, refusal)
                return
            await self.app(scope, receive, self._with_headers(scope, send))
            return
        if scope["type"] == "websocket" and self._needs_check(scope):
            refusal = self._origin_refusal(scope)
            if refusal is not None:
                log.warning("refused a cross-site WebSocket to %s: %s", scope.get("path"), refusal)
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008, "reason": "cross-site request"})
                return
        await self.app(scope, receive, send)

    # --- cross-site request forgery ------------------------------------------------------------
    def _needs_check(self, scope: Scope) -> bool:
        """The request carries the session cookie and no bearer token: the cookie authenticates it.
        (A browser adds `Authorization: Basic` by itself to cross-site requests once a user typed
        the credentials; it never adds `Bearer`.)"""
        headers = _headers(scope)
        if headers.get("authorization", "")[:7].lower() == "bearer ":
            return False
        return self.cookie_name in _cookies(headers.get("cookie", ""))

    def _refusal(self, scope: Scope) -> str | None:
        if scope["method"] in SAFE_METHODS:
            return None
        path, root = str(scope["path"]), str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        if not (path.startswith(FORM_PREFIX) or self._needs_check(scope)):
            return None
        return self._origin_refusal(scope)

    def _origin_refusal(self, scope: Scope) -> str | None:
        """None when the request comes from an allowed origin (or from no browser at all)."""
        headers = _headers(scope)
        allowed = self.trusted | _own_origins(scope, headers)
        if "origin" in headers:
            origin = origin_of(headers["origin"])
            return None if origin in allowed else f"origin {headers['origin']!r} is not this server's"
        if "referer" in headers:
            origin = origin_of(headers["referer"])
            return None if origin in allowed else f"referer of origin {origin!r} is not this server's"
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return f"a {headers['sec-fetch-site']} request without Origin"
        return None  # no browser sends a state-changing request without Origin: a script or a tool

    # --- headers -------------------------------------------------------------------------------
    def _with_headers(self, scope: Scope, send: Send) -> Send:
        path = str(scope.get("path", ""))
        csp = _DOCS_CSP if path in _DOCS_PATHS or path.startswith("/docs/") else _DASHBOARD_CSP
        extra = [*_HEADERS, (b"content-security-policy", csp.encode())]
        if scope.get("scheme") == "https":
            extra.append(_HSTS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _cookies(header: str) -> set[str]:
    """Cookie names as Starlette reads them for `request.cookies` (the same lenient parser, so a
    cookie authentication sees is never one this check misses)."""
    return set(cookie_parser(header))


def _own_origins(scope: Scope, headers: dict[str, str]) -> set[str]:
    """The origin this request was sent to: its scheme (uvicorn's, which follows `X-Forwarded-Proto`
    only from trusted proxies) and its Host header. A request that arrived over plain HTTP may also
    come from `https://` on the same host: a TLS proxy the server was not told to trust."""
    host = headers.get("host")
    if not host:
        return set()
    scheme = {"ws": "http", "wss": "https"}.get(str(scope.get("scheme")), str(scope.get("scheme", "http")))
    schemes = (scheme, "https") if scheme == "http" else (scheme,)
    return {o for o in (origin_of(f"{s}://{host}") for s in schemes) if o}


async def _forbidden(send: Send, reason: str) -> None:
    body = json.dumps({"detail": f"cross-site request refused: {reason}"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_HEADERS,
                (b"content-security-policy", _DASHBOARD_CSP.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- secrets in URLs -----------------------------------------------------------------------------
_SECRET_PARAMS = re.compile(r"([?&](?:token|ticket|access_token)=)[^&\s\"']*", re.IGNORECASE)
URL_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`/api/v1/stream?cursor=3&token=eyJ...` -> `/api/v1/stream?cursor=3&token=[redacted]`."""
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class RedactUrlSecrets(logging.Filter):
    """Redacts `token=`/`ticket=` query values in log records (uvicorn logs the full request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "=" in a for a in args):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact(record.msg)
        return True


def install_log_redaction(names: Iterable[str] = URL_LOGGERS) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrlSecrets) for f in logger.filters):
            logger.addFilter(RedactUrlSecrets())


def install(app: FastAPI, settings: ServerSettings) -> None:
    """Add the CSRF check and security headers to `app`, and keep URL secrets out of its logs."""
    app.add_middleware(BrowserSecurity, settings=settings)
    install_log_redaction()
