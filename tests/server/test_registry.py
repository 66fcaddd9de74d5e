"""The model registry API: upload (signed package), list, read, compare, default per kind, manifest,
bad uploads, roles and organizations, and the organization's signing key."""

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import ModelCard, ModelManifest
from edgefleet.contracts.model_package import SignatureError, read_package, verify_signature
from edgefleet.server import ServerSettings, create_app, signing
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import Organization
from edgefleet.server.errors import ConflictError
from edgefleet.server.services import accounts, registry
from edgefleet.server.services.principal import Principal
from tests.server import registry_kit as kit
from tests.server.conftest import OTHER_SECRET, PASSWORD, Account, invite, make_settings, sign_up


@pytest.fixture
def owner(client: TestClient) -> Account:
    return sign_up(client, "owner@plant.example")


def _package(client: TestClient, owner: Account, model_pk: int) -> bytes:
    sessions = client.app.state.edgefleet.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        return registry.package_bytes(session, owner.org_id, model_pk)[1]


def _signing_key(client: TestClient, account: Account) -> dict[str, str]:
    response = client.get("/api/v1/organization/signing-key", headers=account.headers)
    assert response.status_code == 200, response.text
    key: dict[str, str] = response.json()
    return key


def test_upload_stores_a_signed_package_that_round_trips(client: TestClient, owner: Account) -> None:
    card_bytes = json.dumps(kit.card(), indent=2).encode()
    report = {"int8": {"auc": 0.97}, "nan_is_stored_as_null": float("nan")}
    response = client.post(
        "/api/v1/models",
        files=kit.files(card_bytes=card_bytes, report=report, cases=kit.self_test(3)) | {},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    model = response.json()
    assert (model["model_id"], model["version"], model["device_kind"], model["task"]) == (
        "press-ae",
        "1.0.0",
        "vibration",
        "anomaly_detection",
    )
    assert model["metrics"] == {"int8_auc": 0.97, "recall": 0.9, "false_alarm_rate": 0.01}
    assert model["lineage"] == {
        "training_data_sha256": "a" * 64,
        "config_sha256": "b" * 64,
        "parent_model": None,
        "framework": "tensorflow 2.x",
    }
    assert model["report"] == {"int8": {"auc": 0.97}, "nan_is_stored_as_null": None}
    assert model["self_test"] == kit.self_test(3) and model["self_test_cases"] == 3
    assert model["card_sha256"] == hashlib.sha256(card_bytes).hexdigest()
    assert model["uploaded_by"] == owner.user_id and not model["is_default"]

    package = _package(client, owner, model["id"])
    assert (len(package), hashlib.sha256(package).hexdigest()) == (model["size"], model["sha256"])
    parsed = read_package(package)
    assert parsed.tflite == kit.FAKE_TFLITE and parsed.card_json == card_bytes  # the card as uploaded
    key = _signing_key(client, owner)
    assert model["key_id"] == key["key_id"]
    verify_signature(package, model["signature"], key["public_key"])
    with pytest.raises(SignatureError):
        verify_signature(package[:-1] + b"\x01", model["signature"], key["public_key"])

    listed = client.get("/api/v1/models", headers=owner.headers).json()
    assert [m["id"] for m in listed] == [model["id"]] and "report" not in listed[0]
    audit = client.get("/api/v1/organization/audit", headers=owner.headers).json()
    upload = next(e for e in audit if e["action"] == "model.upload")
    assert upload["target_id"] == str(model["id"]) and upload["detail"]["sha256"] == model["sha256"]


def test_same_id_and_version_is_a_conflict(client: TestClient, owner: Account) -> None:
    assert kit.upload(client, owner).status_code == 201
    again = kit.upload(client, owner, card_data=kit.card(description="changed"))
    assert again.status_code == 409 and "already in the registry" in again.json()["detail"]
    assert kit.upload(client, owner, card_data=kit.card(version="1.0.1")).status_code == 201
    other = sign_up(client, "owner@other.example", "Other")  # versions are per organization
    assert kit.upload(client, other).status_code == 201


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"card_bytes": b"{not json"}, "model_card.json is not a valid model card"),
        ({"card_data": {**kit.card(), "threshold": None}}, "needs `feature_spec` and `threshold`"),
        ({"card_data": {k: v for k, v in kit.card().items() if k != "ops"}}, "ops: Field required"),
        ({"card_data": kit.card(model_version="not a version")}, "model_version"),
        ({"tflite": b"PK\x03\x04 a zip, not a model"}, "not a TFLite flatbuffer"),
        ({"cases": [{"input_int8": [1, 2], "expected_int8": [1, 2, 3, 4]}]}, "has 2 inputs and 4 outputs"),
        ({"cases": [{"input_int8": [300, 0, 0, 0], "expected_int8": [0, 0, 0, 0]}]}, "case 0: input_int8.0"),
        ({"cases": {"input_int8": [0]}}, "must be a list of 1 to 8"),
        ({"cases": kit.self_test(9)}, "must be a list of 1 to 8"),
        ({"report": [1, 2, 3]}, "report.json must hold a JSON object"),
    ],
    ids=["card-not-json", "card-incomplete", "card-missing-ops", "bad-version", "not-tflite",
         "self-test-shape", "self-test-range", "self-test-not-list", "self-test-too-many", "report-list"],
)  # fmt: skip
def test_bad_uploads_are_422_with_a_reason_and_store_nothing(
    client: TestClient, owner: Account, kwargs: dict[str, object], message: str
) -> None:
    response = kit.upload(client, owner, **kwargs)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert client.get("/api/v1/models", headers=owner.headers).json() == []


def _corrupt(model: bytes) -> bytes:
    """The first operator's tensor index pointed far outside the model (a damaged body)."""
    data = bytearray(model)
    at = bytes(data).find((0).to_bytes(4, "little") + (1).to_bytes(4, "little") + (2).to_bytes(4, "little"))
    assert at > 0
    data[at + 4 : at + 8] = (9999).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated-64", "truncated or corrupt"),
        ("truncated-half", "truncated or corrupt"),
        ("tensor-index-out-of-range", "names a tensor that does not exist"),
        ("flash-bytes-1", "flash_bytes is 1; the model file has"),
        ("input-shape", "input shape is [1, 6]; the model's is [1, 4]"),
        # TFLM segfaults on a too-small arena: the probe's child process dies, the server does not
        ("arena-too-small", "the model crashed TensorFlow Lite Micro while loading"),
    ],
)
def test_the_registry_signs_only_models_that_are_what_their_card_says(
    client: TestClient, owner: Account, case: str, message: str
) -> None:
    """Issue 18 finding 6: a 64-byte truncated or body-corrupted .tflite and a card claiming
    flash_bytes: 1 were signed; now each is refused before signing, and nothing is stored."""
    model = kit.FAKE_TFLITE
    tflite, card = {
        "truncated-64": (model[:64], kit.card(flash_bytes=64)),
        "truncated-half": (model[: len(model) // 2], kit.card(flash_bytes=len(model) // 2)),
        "tensor-index-out-of-range": (_corrupt(model), kit.card()),
        "flash-bytes-1": (model, kit.card(flash_bytes=1)),
        "input-shape": (
            model,
            kit.card(
                input={"shape": [1, 6], "dtype": "int8", "quantization": {"scale": 0.05, "zero_point": -3}}
            ),
        ),
        "arena-too-small": (model, kit.card(arena_bytes=64)),
    }[case]
    response = kit.upload(client, owner, tflite=tflite, card_data=card)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert client.get("/api/v1/models", headers=owner.headers).json() == []


def test_an_upload_without_the_card_is_refused(client: TestClient, owner: Account) -> None:
    parts = kit.files()
    del parts["model_card"]
    response = client.post("/api/v1/models", files=parts, headers=owner.headers)
    assert response.status_code == 422
    assert any(e["loc"] == ["body", "model_card"] for e in response.json()["detail"])


def test_roles_and_organizations(client: TestClient, owner: Account) -> None:
    viewer = invite(client, owner, "viewer@plant.example", "viewer")
    admin = invite(client, owner, "admin@plant.example", "admin")
    other = sign_up(client, "owner@other.example", "Other")
    refused = kit.upload(client, viewer)
    assert refused.status_code == 403
    model = kit.upload(client, admin).json()
    pk = model["id"]
    assert client.get(f"/api/v1/models/{pk}", headers=viewer.headers).status_code == 200
    assert client.post(f"/api/v1/models/{pk}/default", headers=viewer.headers).status_code == 403
    for url in (
        f"/api/v1/models/{pk}",
        f"/api/v1/models/{pk}/manifest",
        f"/api/v1/models/compare?a={pk}&b={pk}",
    ):
        assert client.get(url, headers=other.headers).status_code == 404, url
    assert client.post(f"/api/v1/models/{pk}/default", headers=other.headers).status_code == 404
    assert client.get("/api/v1/models", headers=other.headers).json() == []
    assert _signing_key(client, other)["key_id"] != _signing_key(client, viewer)["key_id"]


def test_one_default_per_device_kind(client: TestClient, owner: Account) -> None:
    v1 = kit.upload(client, owner).json()["id"]
    v2 = kit.upload(client, owner, card_data=kit.card(version="2.0.0")).json()["id"]
    cam = kit.upload(
        client, owner, card_data=kit.card("person", "1.0.0", "camera", task="person_detection")
    ).json()["id"]

    def defaults() -> dict[int, bool]:
        return {m["id"]: m["is_default"] for m in client.get("/api/v1/models", headers=owner.headers).json()}

    assert not any(defaults().values())
    assert client.post(f"/api/v1/models/{v1}/default", headers=owner.headers).json()["is_default"]
    assert client.post(f"/api/v1/models/{cam}/default", headers=owner.headers).status_code == 200
    assert defaults() == {v1: True, v2: False, cam: True}
    assert client.post(f"/api/v1/models/{v2}/default", headers=owner.headers).status_code == 200
    assert defaults() == {v1: False, v2: True, cam: True}
    assert client.post(f"/api/v1/models/{v2}/default", headers=owner.headers).status_code == 200  # no-op
    assert client.post("/api/v1/models/99999/default", headers=owner.headers).status_code == 404
    changes = [
        e
        for e in client.get("/api/v1/organization/audit", headers=owner.headers).json()
        if e["action"] == "model.default"
    ]
    assert [(e["target_id"], e["detail"]["previous"]) for e in changes] == [
        (str(v2), v1),
        (str(cam), None),
        (str(v1), None),
    ]
    vibration = client.get(
        "/api/v1/models", params={"device_kind": "vibration"}, headers=owner.headers
    ).json()
    assert [m["id"] for m in vibration] == [v2, v1]  # newest first
    by_id = client.get("/api/v1/models", params={"model_id": "person"}, headers=owner.headers).json()
    assert [m["id"] for m in by_id] == [cam]


def test_compare_shows_metric_deltas_and_card_differences(client: TestClient, owner: Account) -> None:
    a = kit.upload(client, owner).json()["id"]
    changed = kit.card(
        version="1.1.0",
        threshold={"value": 1.2, "policy": "target_far", "target_false_alarm_rate": 0.005},
        arena_bytes=1536,
        metrics={"int8_auc": 0.99, "recall": 0.9, "precision": 0.8},
        lineage={"config_sha256": "c" * 64, "parent_model": "press-ae 1.0.0"},
    )
    b = kit.upload(client, owner, card_data=changed).json()["id"]
    response = client.get("/api/v1/models/compare", params={"a": a, "b": b}, headers=owner.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["a"]["id"], result["b"]["id"]) == (a, b)
    metrics = {m["name"]: m for m in result["metrics"]}
    assert set(metrics) == {"int8_auc", "recall", "false_alarm_rate", "precision"}
    assert metrics["int8_auc"]["delta"] == pytest.approx(0.02) and metrics["int8_auc"]["changed"]
    assert metrics["recall"]["delta"] == 0 and not metrics["recall"]["changed"]
    assert metrics["precision"] == {"name": "precision", "a": None, "b": 0.8, "delta": None, "changed": True}
    card = {c["name"]: c for c in result["card"]}
    assert card["threshold.value"]["delta"] == pytest.approx(-0.3)
    assert (card["threshold.policy"]["a"], card["threshold.policy"]["b"]) == ("percentile", "target_far")
    assert card["arena_bytes"]["delta"] == -512
    assert card["lineage.parent_model"]["b"] == "press-ae 1.0.0" and card["lineage.config_sha256"]["changed"]
    assert not card["ops"]["changed"] and not card["feature_spec.names"]["changed"]
    assert card["score_stats.p99"]["a"] == 1.4
    missing = client.get("/api/v1/models/compare", params={"a": a, "b": 424242}, headers=owner.headers)
    assert missing.status_code == 404


def test_manifest_points_at_the_device_download(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="https://fleet.example:8443/")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "owner@plant.example")
        card_bytes = json.dumps(kit.card()).encode()
        model = client.post(
            "/api/v1/models",
            files=kit.files(card_bytes=card_bytes, cases=kit.self_test(2)),
            headers=owner.headers,
        ).json()
        response = client.get(f"/api/v1/models/{model['id']}/manifest", headers=owner.headers)
        assert response.status_code == 200, response.text
        manifest = ModelManifest.model_validate_json(response.text)
        sessions = client.app.state.edgefleet.sessions  # type: ignore[attr-defined]
        with sessions() as session:
            assert registry.manifest_for(session, owner.org_id, model["id"], settings.public_url) == manifest
    assert manifest.url == f"https://fleet.example:8443/api/v1/ota/packages/{model['id']}"
    assert (manifest.sha256, manifest.size, manifest.signature, manifest.key_id) == (
        model["sha256"],
        model["size"],
        model["signature"],
        model["key_id"],
    )
    assert manifest.model_card_sha256 == hashlib.sha256(card_bytes).hexdigest()
    assert [c.model_dump(mode="json") for c in manifest.self_test] == kit.self_test(2)
    assert (manifest.model_id, manifest.model_version, manifest.min_runtime_version) == (
        "press-ae",
        "1.0.0",
        "0.1.0",
    )


def test_the_signing_key_is_stable_and_needs_the_servers_secret(
    tmp_path: Path, settings: ServerSettings
) -> None:
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "owner@plant.example")
        first = _signing_key(client, owner)
        assert set(first) == {"key_id", "public_key"}  # the private key is never returned
        assert _signing_key(client, owner) == first
        response = client.post("/api/v1/devices", json={"id": "press-1"}, headers=owner.headers)
        claim = client.post(
            "/api/v1/devices/claim",
            json={"device_id": "press-1", "claim_token": response.json()["claim_token"]},
        ).json()
        assert (claim["ota_key_id"], claim["ota_public_key"]) == (first["key_id"], first["public_key"])
    with TestClient(create_app(settings)) as client:  # a restart keeps the key
        assert _signing_key(client, owner) == first
    changed = make_settings(tmp_path, secret_key=OTHER_SECRET)
    app = create_app(changed)
    with TestClient(app), app.state.edgefleet.sessions() as session:
        with pytest.raises(signing.SigningError, match="EDGEFLEET_SECRET_KEY differs"):
            signing.sign(session, owner.org_id, b"data", secret=changed.secret_key)
        assert signing.public_key(session, owner.org_id, secret=changed.secret_key)[0] == first["key_id"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[sessionmaker[Session], Principal]]:
    url = (
        request.getfixturevalue("postgres_database").url
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'registry.db'}"
    )
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        org = Organization(name=f"registry-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        user = accounts.create_user(session, org.id, f"{org.name}@plant.example", PASSWORD, "owner")
        principal = Principal(user, via="session")
    yield factory, principal
    with transaction(factory) as session:
        session.execute(delete(Organization).where(Organization.id == principal.org_id))
    engine.dispose()


def test_the_service_on_both_databases(sessions: tuple[sessionmaker[Session], Principal]) -> None:
    factory, principal = sessions
    secret = "service-secret-0123456789-abcdefghijklmnop"
    report = json.dumps({"auc": float("nan"), "curve": [0.1, float("inf")]}).encode()
    upload = registry.ModelUpload(
        kit.FAKE_TFLITE, json.dumps(kit.card()).encode(), report, json.dumps(kit.self_test(1)).encode()
    )
    with transaction(factory) as session:
        pk = registry.upload_model(session, principal, upload, secret=secret).id
        registry.set_default(session, principal, pk)
    with pytest.raises(ConflictError), transaction(factory) as session:
        registry.upload_model(session, principal, upload, secret=secret)
    with transaction(factory) as session:
        row, package = registry.package_bytes(session, principal.org_id, pk)
        assert row.report == {"auc": None, "curve": [0.1, None]}
        key_id, public_key = signing.public_key(session, principal.org_id, secret=secret)
        verify_signature(package, row.signature, public_key)
        assert row.key_id == key_id and read_package(package).tflite == kit.FAKE_TFLITE
        assert registry.default_model(session, principal.org_id, "vibration") is not None
        manifest = registry.manifest_for(session, principal.org_id, pk, "http://server:8000")
        assert manifest.self_test[0].input_int8 == kit.self_test(1)[0]["input_int8"]


def test_a_model_that_loaded_is_not_probed_again_and_a_refusal_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TFLM load runs in a child process (seconds); the same bytes and arena load the same way,
    so a second check of a model that loaded skips it, while a refused model is probed every time."""
    from edgefleet.server.services import model_check

    probes: list[int] = []
    real_probe = model_check._probe_in_child

    def counting(tflite: bytes, arena: int) -> None:
        probes.append(arena)
        real_probe(tflite, arena)

    monkeypatch.setattr(model_check, "_probe_in_child", counting)
    monkeypatch.setattr(model_check, "_loaded", type(model_check._loaded)())
    card = ModelCard.model_validate_json(json.dumps(kit.card(arena_bytes=4096)))
    for _ in range(2):
        model_check.check_model(kit.FAKE_TFLITE, card)
    assert probes == [4096]
    too_small = ModelCard.model_validate_json(json.dumps(kit.card(arena_bytes=64)))
    for _ in range(2):
        with pytest.raises(model_check.ModelCheckError, match="crashed TensorFlow Lite Micro"):
            model_check.check_model(kit.FAKE_TFLITE, too_small)
    assert probes == [4096, 64, 64]
