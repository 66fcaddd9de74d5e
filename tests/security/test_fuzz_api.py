"""Property-based fuzzing of the whole OpenAPI document (schemathesis): no request gets a 5xx.

Every operation of the generated OpenAPI document gets valid (positive) and invalid (negative)
requests, as an owner by session token and by API key, against a real uvicorn server: a new route is
fuzzed the day it is added. Examples per operation are bounded so the test runs in about a minute on
two cores; a failure prints the operation and the request that got the 5xx.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation

from edgefleet.server import create_app
from tests.server.conftest import PASSWORD, make_settings
from tests.support.services import PostgresDatabase, free_port, serve_app

pytestmark = pytest.mark.slow
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 15}
"""Examples per operation and mode: ~51 operations x 18 requests x 2 credentials kinds drawn."""


@dataclass
class Fleet:
    url: str
    credentials: list[dict[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _prepare(url: str) -> Fleet:
    """An owner (session token and API key), a device and an invite to aim at."""
    fleet = Fleet(url)
    with httpx.Client(base_url=url, timeout=10) as http:
        body = {"email": "fuzz-owner@example.com", "password": PASSWORD, "organization": "Fuzz"}
        signed_up = http.post("/api/v1/auth/signup", json=body)
        assert signed_up.status_code == 201, signed_up.text
        jwt = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
        key = http.post("/api/v1/auth/api-keys", json={"name": "fuzz"}, headers=jwt)
        assert key.status_code == 201, key.text
        fleet.credentials = [jwt, {"Authorization": f"Bearer {key.json()['key']}"}]
        assert http.post("/api/v1/devices", json={"id": "fuzz-1"}, headers=jwt).status_code == 201
    return fleet


def _fuzz(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, fleet: Fleet) -> None:
    @given(case=operation.as_strategy(generation_mode=mode), pick=st.integers(0, 1))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any], pick: int) -> None:
        response = case.call(base_url=fleet.url, headers=fleet.credentials[pick], timeout=20)
        if response.status_code >= 500:
            fleet.failures.append(
                f"{operation.label} ({mode.value}) -> {response.status_code} {response.text[:200]}\n"
                f"    {case.as_curl_command()}"
            )

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))]
)
def test_no_request_gets_a_server_error(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    db_url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    if database == "postgres":  # a database of its own: the fuzzer creates and deletes freely
        postgres = PostgresDatabase()
        postgres.create()
        request.addfinalizer(postgres.drop)
        db_url = postgres.url
    mqtt_port = free_port()  # an embedded broker: commands and rollouts are published, not refused
    make: Callable[[str], FastAPI] = lambda url: create_app(  # noqa: E731
        make_settings(tmp_path, db_url=db_url, public_url=url, broker="embedded", embedded_port=mqtt_port)
    )
    with serve_app(make) as (url, app):
        fleet = _prepare(url)
        schema = schemathesis.openapi.from_dict(app.openapi())
        operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
        assert len(operations) > 40
        random.Random(0).shuffle(operations)
        for operation in operations:
            for mode in EXAMPLES:
                _fuzz(operation, mode, fleet)
    assert not fleet.failures, f"{len(fleet.failures)} 5xx answers:\n" + "\n".join(fleet.failures)
