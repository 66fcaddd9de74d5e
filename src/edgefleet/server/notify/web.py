"""Pages and scripts outside the API: the acknowledge link's confirmation page, and the Web Push
scripts the dashboard's service worker and pages include.

`GET /notify/ack?token=...` only shows what the link would do (mail scanners and link previews fetch
links); its button posts the token back, and only that POST acknowledges.
"""

import html
from typing import Annotated

from fastapi import APIRouter, Form, Query, Response
from fastapi.responses import HTMLResponse

from edgefleet.server.api.deps import ContextDep, SessionDep
from edgefleet.server.notify import ack_links

router = APIRouter(prefix="/notify", include_in_schema=False)
Token = Annotated[str, Query(max_length=2048)]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>{title} · edgefleet</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1e293b}}
button{{font-size:1.1rem;padding:.6rem 1.4rem;background:#1e40af;color:#fff;border:0;border-radius:.4rem}}
.muted{{color:#64748b}}</style></head>
<body><h1>{title}</h1>{body}<p class="muted"><a href="/alarms">Alarms in the dashboard</a></p></body></html>
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body), status_code=status, headers=headers
    )


@router.get("/ack")
def confirm_acknowledge(token: Token, session: SessionDep, context: ContextDep) -> HTMLResponse:
    verdict = ack_links.check(session, context.settings.secret_key, token)
    if verdict != "ok":
        return _page("Cannot acknowledge", f"<p>{html.escape(ack_links.MESSAGES[verdict])}</p>", 410)
    form = (
        "<p>Acknowledge this alarm? Acknowledging says someone is on it; it does not clear the alarm.</p>"
        '<form method="post" action="/notify/ack">'
        f'<input type="hidden" name="token" value="{html.escape(token, quote=True)}">'
        '<button type="submit" data-testid="acknowledge">Acknowledge</button></form>'
    )
    return _page("Acknowledge alarm", form)


@router.post("/ack")
def acknowledge(
    token: Annotated[str, Form(max_length=2048)], session: SessionDep, context: ContextDep
) -> HTMLResponse:
    verdict = ack_links.use(session, context.settings.secret_key, token)
    status = {"ok": 200, "acknowledged": 200, "invalid": 403}.get(verdict, 410)
    title = "Acknowledged" if verdict == "ok" else "Cannot acknowledge"
    return _page(title, f"<p>{html.escape(ack_links.MESSAGES[verdict])}</p>", status)


PUSH_HANDLER_JS = """// edgefleet Web Push for the service worker: importScripts('/notify/push-sw.js')
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {title: 'edgefleet', body: event.data.text()};
  }
  event.waitUntil(self.registration.showNotification(data.title || 'edgefleet', {
    body: data.body || '', tag: data.tag || data.id, data: {url: data.url || '/alarms', id: data.id},
    renotify: data.change === 'escalated',
  }));
});
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || '/alarms';
  event.waitUntil(clients.matchAll({type: 'window', includeUncontrolled: true}).then((windows) => {
    for (const w of windows) {
      if (new URL(w.url).origin === self.location.origin && 'focus' in w) {
        w.navigate(url);
        return w.focus();
      }
    }
    return clients.openWindow(url);
  }));
});
"""

PUSH_CLIENT_JS = """// edgefleet Web Push: window.edgefleetPush.enable() subscribes this browser.
window.edgefleetPush = {
  async enable() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window)) return 'unsupported';
    const registration = await navigator.serviceWorker.getRegistration();
    if (!registration) return 'no-service-worker';
    if (await Notification.requestPermission() !== 'granted') return 'denied';
    const answer = await fetch('/api/v1/notifications/push/key', {credentials: 'same-origin'});
    const key = (await answer.json()).public_key;
    const raw = atob(key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - key.length % 4) % 4));
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: Uint8Array.from(raw, (c) => c.charCodeAt(0)),
    });
    const response = await fetch('/api/v1/notifications/push/subscriptions', {
      method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(subscription.toJSON()),
    });
    return response.ok ? 'subscribed' : 'refused';
  },
};
"""


@router.get("/push-sw.js")
def push_handler() -> Response:
    return Response(PUSH_HANDLER_JS, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/push-client.js")
def push_client() -> Response:
    return Response(PUSH_CLIENT_JS, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
