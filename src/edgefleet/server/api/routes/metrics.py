"""`/metrics` (Prometheus text, outside `/api/v1`): for the scrape token or the server's operators.

Readers: `Authorization: Bearer <EDGEFLEET_METRICS_TOKEN>` (what Prometheus is given), or an admin or
owner of the operator organization (`EDGEFLEET_OPERATOR_ORGANIZATION`) by session token, API key or
session cookie. The figures are process-wide (ingest rate, rejects by reason, queue depth, latency),
the sum of every tenant's traffic, so no tenant's users get them.
"""

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgefleet.server.api.deps import ContextDep, principal_from_token
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import AuthError

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def may_read_metrics(context: ServerContext, token: str | None) -> bool:
    """True for the scrape token or an operator admin's credentials; raises AuthError for bad ones."""
    if not token:
        raise AuthError("/metrics needs the scrape token or an operator's credentials")
    scrape = context.settings.metrics_token
    if scrape is not None and hmac.compare_digest(token.encode(), scrape.get_secret_value().encode()):
        return True
    operators = context.settings.operator_organization
    with context.sessions() as session, session.begin():
        principal = principal_from_token(session, context, token)
        return principal.org_id == operators and principal.role in ("admin", "owner")


@router.get("/metrics", include_in_schema=False)
def metrics(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    token = credentials.credentials if credentials else request.cookies.get(context.settings.cookie_name)
    try:
        allowed = may_read_metrics(context, token)
    except AuthError as err:
        raise _unauthorized(str(err)) from err
    if not allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "/metrics covers every organization: it is for the scrape token and the operators' admins",
        )
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
