"""Sign-in and sign-up rate limits (issue 18, finding 3).

Before: 12 concurrent sign-ins got 11 wrong passwords checked and the right one accepted with a limit
of 5; five failures locked the owner out from everywhere; 100,000 blocked checks left 100,021 keys in
memory; `X-Forwarded-For` from 127.0.0.1 chose the address that was limited; sign-up had no limit.
"""

import gc
import os
import socket
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edgefleet.server import create_app
from edgefleet.server.context import ServerContext
from tests.server.conftest import PASSWORD, make_settings, sign_up
from tests.support.services import free_port, in_ci, serve_app

REDIS_URL = os.environ.get("EDGEFLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WRONG = "not the password at all"


def _redis_problem() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as err:
        return f"Redis not reachable at {REDIS_URL}: {err}"
    return None


@pytest.fixture
def redis_url() -> str:
    """Redis for limits shared by several server processes: skipped where absent, failed under CI
    (as `needs(...)` does for the other services)."""
    if problem := _redis_problem():
        if in_ci():
            pytest.fail(f"CI requires redis: {problem}", pytrace=False)
        pytest.skip(f"needs redis: {problem}")
    return REDIS_URL


def _login(client: TestClient | httpx.Client, email: str, password: str) -> int:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code


def _from(app: FastAPI, address: str) -> TestClient:
    """A client whose TCP peer is `address` (the app is started by another client)."""
    return TestClient(app, client=(address, 40000))


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_concurrent_sign_ins_check_no_more_passwords_than_the_limit(
    tmp_path: Path, storage: str, request: pytest.FixtureRequest
) -> None:
    extra = {"ratelimit_url": request.getfixturevalue("redis_url")} if storage == "redis" else {}
    settings = make_settings(tmp_path, ratelimit_prefix=f"t-{uuid.uuid4().hex}", **extra)
    with serve_app(lambda _url: create_app(settings)) as (url, _app):
        with httpx.Client(base_url=url) as http:
            body = {"email": "ann@example.com", "password": PASSWORD, "organization": "Mill"}
            assert http.post("/api/v1/auth/signup", json=body).status_code == 201
        passwords = [WRONG] * 11 + [PASSWORD]
        barrier = threading.Barrier(len(passwords))
        codes: list[int] = []

        def attempt(password: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                barrier.wait()
                codes.append(_login(http, "ann@example.com", password))

        threads = [threading.Thread(target=attempt, args=(p,)) for p in passwords]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    checked = [c for c in codes if c != 429]
    assert len(codes) == 12 and set(codes) <= {200, 401, 429}, codes
    assert len(checked) <= 5, f"{len(checked)} passwords were checked with a limit of 5: {sorted(codes)}"


def test_a_guesser_elsewhere_does_not_lock_the_owner_out(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        sign_up(client, "bo@example.com")
        owner_home, attacker = _from(app, "192.0.2.10"), _from(app, "198.51.100.7")
        assert _login(owner_home, "bo@example.com", PASSWORD) == 200  # the owner's usual address
        results = [_login(attacker, "bo@example.com", WRONG) for _ in range(30)]
        assert results[:5] == [401] * 5 and set(results[5:]) == {429}  # slowed down: 5, then wait
        assert _login(attacker, "bo@example.com", PASSWORD) == 429  # even the right one, from there
        assert _login(owner_home, "bo@example.com", PASSWORD) == 200  # the owner signs in as usual
        assert _login(_from(app, "203.0.113.99"), "bo@example.com", PASSWORD) == 200  # and from elsewhere


def test_guessers_on_many_addresses_do_not_lock_the_owner_out_of_a_known_address(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, login_limits_per_account="6/5 minutes"))
    with TestClient(app) as client:
        sign_up(client, "cy@example.com")
        assert _login(_from(app, "192.0.2.20"), "cy@example.com", PASSWORD) == 200
        for n in range(10):  # 20 guesses over 10 addresses: the account-wide limit stops them
            guesser = _from(app, f"198.51.100.{n + 1}")
            assert _login(guesser, "cy@example.com", WRONG) in (401, 429)
            assert _login(guesser, "cy@example.com", WRONG) in (401, 429)
        assert _login(_from(app, "198.51.100.99"), "cy@example.com", PASSWORD) == 429
        assert _login(_from(app, "192.0.2.20"), "cy@example.com", PASSWORD) == 200  # known address


def test_a_successful_sign_in_starts_the_count_over(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        sign_up(client, "di@example.com")
        for _ in range(3):
            for _ in range(4):
                assert _login(client, "di@example.com", WRONG) == 401
            assert _login(client, "di@example.com", PASSWORD) == 200


def test_blocked_checks_do_not_grow_memory_without_bound(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, ratelimit_memory_max_keys=2000))
    context: ServerContext = app.state.edgefleet
    limiter = context.limiter
    blocked = 0
    for n in range(20):  # one address fails until it is refused
        try:
            limiter.check(f"user{n}@example.com", "198.51.100.1")
            limiter.failed(f"user{n}@example.com", "198.51.100.1")
        except Exception:
            blocked += 1
    assert blocked == 0
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        # 5x the cap in new keys: an unbounded store retains ~12 MB here, the capped one ~1 MB
        for n in range(5_000):  # blocked: an address over its limit, and many addresses (a botnet)
            for address in ("198.51.100.1", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"):
                try:
                    limiter.check(f"victim{n}@example.com", address)
                except Exception:
                    blocked += 1
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blocked >= 5_000  # the address over its limit stays refused while others flood in
    assert after - before < 4_000_000, f"{(after - before) / 1e6:.1f} MB retained after 10,000 checks"


def test_sign_up_is_rate_limited_per_address(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, signup_limits="3/hour"))
    with TestClient(app) as client:
        for n in range(3):
            sign_up(client, f"org{n}@example.com", f"Org {n}")
        body = {"email": "org9@example.com", "password": PASSWORD, "organization": "Org 9"}
        refused = client.post("/api/v1/auth/signup", json=body)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert _from(app, "192.0.2.55").post("/api/v1/auth/signup", json=body).status_code == 201


def test_the_dashboards_sign_up_form_shares_the_limit(tmp_path: Path) -> None:
    """The /ui/signup form post had no limit at all (the API had one after this issue's fix)."""
    from edgefleet.dashboard.mount import create_dashboard_app

    app = create_dashboard_app(make_settings(tmp_path, signup_limits="2/hour"))
    with TestClient(app) as client:
        sign_up(client, "first@example.com", "First")  # one through the API
        origin = {"origin": str(client.base_url)}
        form = {"email": "second@example.com", "password": PASSWORD, "organization": "Second"}
        ok = client.post("/ui/signup", data=form, headers=origin, follow_redirects=False)
        assert ok.status_code == 303 and "error" not in ok.headers["location"]
        form = {"email": "third@example.com", "password": PASSWORD, "organization": "Third"}
        refused = client.post("/ui/signup", data=form, headers=origin, follow_redirects=False)
        assert refused.status_code == 303 and "too%20many%20sign-ups" in refused.headers["location"]


def test_the_redis_limit_is_shared_by_two_server_processes(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(tmp_path, ratelimit_url=redis_url, ratelimit_prefix=f"t-{uuid.uuid4().hex}")
    first, second = create_app(settings), create_app(settings)
    with TestClient(first) as one, TestClient(second) as two:
        sign_up(one, "ed@example.com")
        assert [_login(one, "ed@example.com", WRONG) for _ in range(3)] == [401] * 3
        assert [_login(two, "ed@example.com", WRONG) for _ in range(2)] == [401] * 2
        assert _login(two, "ed@example.com", PASSWORD) == 429
        assert _login(one, "ed@example.com", PASSWORD) == 429


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    from edgefleet.server.api.deps import forwarded_address

    assert forwarded_address("127.0.0.1", ["203.0.113.5"], ()) == "127.0.0.1"
    assert forwarded_address("10.0.0.2", ["203.0.113.5"], ("10.0.0.0/8",)) == "203.0.113.5"
    # the right-most untrusted hop: what a client writes on the left is its own say
    assert forwarded_address("10.0.0.2", ["1.1.1.1, 203.0.113.5"], ("10.0.0.0/8",)) == "203.0.113.5"
    assert forwarded_address("10.0.0.2", ["203.0.113.5, 10.0.0.3"], ("10.0.0.0/8",)) == "203.0.113.5"
    assert forwarded_address("198.51.100.1", ["203.0.113.5"], ("10.0.0.0/8",)) == "198.51.100.1"
    assert forwarded_address("10.0.0.2", ["not-an-ip"], ("10.0.0.0/8",)) == "10.0.0.2"


@contextmanager
def _serve(app: FastAPI, **options: Any) -> Iterator[str]:
    """uvicorn with `options` (those `edgefleet server` passes), on a free port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.mark.parametrize("trusted", [False, True])
def test_a_local_client_cannot_choose_its_address_with_x_forwarded_for(tmp_path: Path, trusted: bool) -> None:
    """Served as `edgefleet server` serves (uvicorn trusts X-Forwarded-For from 127.0.0.1 by default)."""
    proxies = ["127.0.0.1"] if trusted else []
    settings = make_settings(tmp_path, login_limits_per_address="3/5 minutes", trusted_proxies=proxies)
    app = create_app(settings)
    with _serve(app, **settings.uvicorn_proxy_options()) as url, httpx.Client(base_url=url) as http:
        codes = [
            http.post(
                "/api/v1/auth/login",
                json={"email": f"u{n}@example.com", "password": WRONG},
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            ).status_code
            for n in range(6)
        ]
    # trusted proxy: six addresses, none over its limit; otherwise one address, refused after 3
    assert codes == ([401] * 6 if trusted else [401] * 3 + [429] * 3)


def test_edgefleet_server_gives_uvicorn_the_proxy_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgefleet.cli.main import app as cli

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kwargs: seen.update(kwargs))
    monkeypatch.chdir(tmp_path)
    env = {"EDGEFLEET_SECRETS_FILE": str(tmp_path / "secrets.json")}
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(cli, ["server", "--db", db, "--broker", "none", "--no-dashboard"], env=env)
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is False
    env["EDGEFLEET_TRUSTED_PROXIES"] = '["10.0.0.0/8"]'
    result = CliRunner().invoke(cli, ["server", "--db", db, "--broker", "none", "--no-dashboard"], env=env)
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == ["10.0.0.0/8"]


def test_an_unreachable_redis_refuses_sign_in_rather_than_lifting_the_limit(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, ratelimit_url=f"redis://127.0.0.1:{free_port()}/0"))
    with TestClient(app) as client:
        response = client.post("/api/v1/auth/login", json={"email": "fy@example.com", "password": WRONG})
        assert response.status_code == 503 and "rate limiter" in response.text
