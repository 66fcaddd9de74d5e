"""Fixtures for OTA tests: two model versions, a signing key, a package server."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgefleet.contracts import ModelManifest, SelfTestCase
from tests.edge.ota.kit import (
    PackageServer,
    SigningKey,
    copy_model,
    manifest_for,
    package_of,
    self_test_cases,
)

PACKAGE_PATH = "/ota/packages/test-ae-0.0.2"


@dataclass(frozen=True)
class Models:
    v1: Path  # the factory model
    v2: Path  # the update: version 0.0.2
    v2_package: bytes
    v2_self_test: list[SelfTestCase]


@pytest.fixture(scope="session")
def models(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    """v2 is v1's network with a new version and threshold (training a second one costs ~20 s)."""
    root = tmp_path_factory.mktemp("ota-models")
    card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    v2 = copy_model(
        model_dir, root / "v2", model_version="0.0.2", threshold__value=card["threshold"]["value"] * 1.1
    )
    return Models(model_dir, v2, package_of(v2), self_test_cases(v2))


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def server(models: Models) -> Iterator[PackageServer]:
    srv = PackageServer(files={PACKAGE_PATH: models.v2_package}).start()
    yield srv
    srv.stop()


@pytest.fixture
def manifest(models: Models, server: PackageServer, signing_key: SigningKey) -> ModelManifest:
    return manifest_for(models.v2_package, server.url(PACKAGE_PATH), signing_key, models.v2_self_test)
