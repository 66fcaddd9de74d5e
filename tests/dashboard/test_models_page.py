"""The Models page in a real browser against a real server process: an admin uploads a model
directory's files and sees the version listed, opens its card, makes a version the default and
compares two versions; a viewer sees the registry but no upload and no default buttons."""

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.dashboard.stack import PASSWORD, ServerProcess, sign_up
from tests.dashboard.test_browser import _goto, _login
from tests.server import registry_kit as kit

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
_n = itertools.count()


def _model_dir(root: Path, version: str, **card: Any) -> list[Path]:
    directory = root / version
    directory.mkdir(parents=True)
    (directory / "model.tflite").write_bytes(kit.FAKE_TFLITE)
    (directory / "model_card.json").write_text(json.dumps(kit.card(version=version, **card)))
    (directory / "self_test.json").write_text(json.dumps(kit.self_test(2)))
    return [directory / name for name in ("model.tflite", "model_card.json", "self_test.json")]


def _upload(page: Any, files: list[Path]) -> None:
    page.locator("[data-testid='upload-picker'] input[type=file]").set_input_files([str(f) for f in files])
    page.locator("[data-testid='upload-files']").filter(has_text="model_card.json").wait_for()
    page.click("[data-testid='upload-submit']")


def _pick(page: Any, testid: str, option: str) -> None:
    """Choose an option in a select, waiting until its menu has closed and the choice shows."""
    page.click(f"[data-testid='{testid}']")
    menu = page.locator(".q-menu:visible")
    menu.get_by_role("option", name=option).click()
    menu.wait_for(state="hidden")
    expect(page.locator(f"[data-testid='{testid}']")).to_contain_text(option)


def test_upload_list_card_default_and_compare(
    page: Any, server: ServerProcess, tmp_path: Path, artifacts: Path
) -> None:
    n = next(_n)
    org = sign_up(server.url, f"models{n}@plant{n}.example", f"Models {n}")
    _login(page, server, org.email)
    page.wait_for_url(f"{server.url}/")
    _goto(page, f"{server.url}/models")
    page.locator("[data-testid='no-models']").wait_for()

    _upload(page, _model_dir(tmp_path, "1.0.0"))
    first = page.locator("[data-testid='model-row'][data-version='1.0.0']")
    first.wait_for()
    assert "vibration" in first.inner_text() and "int8_auc 0.97" in first.inner_text()
    key_id = org.api.get("/api/v1/organization/signing-key").json()["key_id"]
    assert f"key {key_id}" in first.inner_text()

    tuned = {"threshold": {"value": 1.1, "policy": "fixed"}, "metrics": {"int8_auc": 0.99}}
    _upload(page, _model_dir(tmp_path, "1.1.0", **tuned))
    second = page.locator("[data-testid='model-row'][data-version='1.1.0']")
    second.wait_for()
    group = page.locator("[data-testid='model-group'][data-model-id='press-ae']")
    assert group.locator("[data-testid='model-row']").count() == 2

    duplicate = _model_dir(tmp_path / "again", "1.0.0")
    _upload(page, duplicate)
    page.wait_for_selector("text=already in the registry")  # the registry's message, as a notification

    second.locator("[data-testid='set-default']").click()
    second.locator("[data-testid='default-badge']").wait_for()
    assert first.locator("[data-testid='default-badge']").count() == 0
    models = org.api.get("/api/v1/models").json()
    assert {m["version"]: m["is_default"] for m in models} == {"1.0.0": False, "1.1.0": True}

    second.locator("[data-testid='show-card']").click()
    detail = page.locator("[data-testid='model-detail']")
    detail.wait_for()
    assert "press-ae 1.1.0" in detail.inner_text() and "2 cases" in detail.inner_text()
    assert models[0]["sha256"] in detail.inner_text()

    for testid, version in (("compare-a", "1.0.0"), ("compare-b", "1.1.0")):
        _pick(page, testid, f"press-ae {version}")
    page.click("[data-testid='compare']")
    result = page.locator("[data-testid='compare-result']")
    result.wait_for()
    metrics_text = page.locator("[data-testid='compare-metrics']").inner_text()
    assert "int8_auc" in metrics_text and "+0.02" in metrics_text
    card_text = page.locator("[data-testid='compare-card']").inner_text()
    assert "threshold.value" in card_text and "threshold.policy" in card_text and "fixed" in card_text
    page.screenshot(path=str(artifacts / "dashboard-models.png"), full_page=True)


def test_a_viewer_sees_versions_but_cannot_change_them(page: Any, server: ServerProcess) -> None:
    n = next(_n)
    org = sign_up(server.url, f"owner-m{n}@plant-m{n}.example", f"Viewer plant {n}")
    uploaded = org.api.post("/api/v1/models", files=kit.files())
    assert uploaded.status_code == 201, uploaded.text
    invite = org.api.post(
        "/api/v1/users/invites", json={"email": f"viewer-m{n}@plant.example", "role": "viewer"}
    )
    accepted = httpx.post(
        f"{server.url}/api/v1/auth/invites/accept",
        json={"token": invite.json()["token"], "password": PASSWORD},
    )
    assert accepted.status_code == 201
    _login(page, server, f"viewer-m{n}@plant.example")
    page.wait_for_url(f"{server.url}/")
    _goto(page, f"{server.url}/models")
    page.locator("[data-testid='model-row'][data-version='1.0.0']").wait_for()
    assert page.locator("[data-testid='model-upload']").count() == 0
    assert page.locator("[data-testid='set-default']").count() == 0
    page.locator("[data-testid='show-card']").click()
    page.locator("[data-testid='model-detail']").wait_for()
