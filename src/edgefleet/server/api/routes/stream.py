"""`/api/v1/stream`: a WebSocket pushing the caller's organization's events, alarms and device changes."""

import asyncio
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from edgefleet.server.api.deps import principal_from_token
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import AuthError

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])


def _authenticate(context: ServerContext, token: str | None) -> int | None:
    if not token:
        return None
    with context.sessions() as session, session.begin():
        try:
            return principal_from_token(session, context, token).org_id
        except AuthError:
            return None


@router.websocket("/stream")
async def stream(websocket: WebSocket, cursor: int | None = None, token: str | None = None) -> None:
    """Authenticate by session cookie, `Authorization: Bearer`, or `?token=`; resume with `?cursor=`.

    Each message is `{"cursor": n, "type": "event"|"alarm"|"device"|"reset", "data": {...}}`.
    """
    context: ServerContext = websocket.app.state.edgefleet
    header = websocket.headers.get("authorization", "")
    bearer = header[7:] if header.lower().startswith("bearer ") else None
    token = bearer or token or websocket.cookies.get(context.settings.cookie_name)
    org_id = await asyncio.to_thread(_authenticate, context, token)
    if org_id is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="not signed in")
        return
    subscription = context.hub.subscribe(org_id, cursor)  # before accept: nothing slips in between
    await websocket.accept()
    context.metrics.stream_clients.inc()
    receiver = asyncio.create_task(_drain(websocket))
    try:
        while True:
            getter = asyncio.create_task(subscription.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                break
            item = getter.result()
            if item is None:
                await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="fell behind; resume")
                break
            await websocket.send_json(item.to_json())
    except WebSocketDisconnect:
        pass
    finally:
        receiver.cancel()
        context.hub.unsubscribe(subscription)
        context.metrics.stream_clients.dec()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return
