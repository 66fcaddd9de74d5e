"""The few server API calls retraining needs: sampled windows, and the deployed model's registry entry.

Authenticated with an API key (or session token) as a bearer token. Registry lookups are optional:
a server without the registry, or one whose registry does not serve package bytes to users,
just yields less (a card without its model, or nothing), never an error.
"""

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from edgefleet.contracts import ContractError, ModelCard, read_package
from edgefleet.ml.errors import RetrainError

log = logging.getLogger(__name__)
PAGE = 500
REGISTRY_PACKAGE_PATH = "/api/v1/models/{pk}/package"
"""A user-authenticated package download, if the registry offers one (else only the card is used)."""


@dataclass(frozen=True)
class RegistryModel:
    model_id: str
    version: str
    card: ModelCard
    tflite: bytes | None
    source: str


class FleetClient:
    def __init__(self, url: str, api_key: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "FleetClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.get(path, params=params)
        except httpx.HTTPError as err:
            raise RetrainError(f"cannot reach the server at {self.url}: {err}") from err

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._parse(self._get(path, params), path)

    def _parse(self, response: httpx.Response, path: str) -> Any:
        if response.status_code == 401:
            raise RetrainError(f"{self.url} refused the API key (401): check --api-key / EDGEFLEET_API_KEY")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except (ValueError, AttributeError):
                detail = response.text[:200]
            raise RetrainError(f"GET {path} answered {response.status_code}: {detail}")
        try:
            return response.json()
        except ValueError as err:
            raise RetrainError(f"GET {path} did not answer JSON: {response.text[:200]!r}") from err

    def samples(
        self,
        model_id: str | None,
        *,
        since: datetime | None = None,
        device_kind: str | None = "vibration",
        max_samples: int = 20_000,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every sampled window matching the filters, newest first, page by page."""
        params: dict[str, Any] = {"limit": PAGE}
        if model_id:
            params["model_id"] = model_id
        if device_kind:
            params["device_kind"] = device_kind
        if since:
            params["since"] = since.isoformat()
        seen = 0
        while True:
            page = self._json("/api/v1/samples", params)
            items = page.get("items", [])
            yield from items[: max_samples - seen]
            seen = min(max_samples, seen + len(items))
            if on_page is not None:
                on_page(seen)
            cursor = page.get("next_cursor")
            if not cursor or seen >= max_samples:
                return
            params["cursor"] = cursor

    def deployed_model(self, model_id: str, prefer_version: str | None = None) -> RegistryModel | None:
        """The registry entry devices run: `prefer_version` (what the samples came from) if the
        registry has it, else the default of its device kind, else None."""
        response = self._get("/api/v1/models", {"model_id": model_id})
        if response.status_code in (404, 405):
            log.info("%s has no model registry", self.url)
            return None
        entries = self._parse(response, "/api/v1/models")
        if not isinstance(entries, list):
            return None
        chosen = next((e for e in entries if e.get("version") == prefer_version), None)
        chosen = chosen or next((e for e in entries if e.get("is_default")), None)
        if chosen is None:
            return None
        pk = chosen["id"]
        detail = self._json(f"/api/v1/models/{pk}")
        try:
            card = ModelCard.model_validate_json(json.dumps(detail["card"]))  # strict: JSON mode
        except (KeyError, TypeError, ValueError) as err:
            raise RetrainError(
                f"the registry's card of {model_id} {chosen.get('version')} is invalid: {err}"
            ) from err
        return RegistryModel(
            model_id, card.model_version, card, self._package_model(pk), f"{self.url} registry #{pk}"
        )

    def _package_model(self, pk: int) -> bytes | None:
        response = self._get(REGISTRY_PACKAGE_PATH.format(pk=pk))
        if response.status_code != 200:
            return None
        try:
            return read_package(response.content).tflite
        except ContractError as err:
            log.warning("the registry's package #%s is unusable: %s", pk, err)
            return None
