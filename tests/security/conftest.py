"""Fixtures of the adversarial tests: the browser tests reuse the dashboard's real server process and
headless chromium (tests/dashboard/conftest.py); the API tests use the server tests' app client."""

from tests.dashboard.conftest import artifacts, browser, page, server

__all__ = ["artifacts", "browser", "page", "server"]
