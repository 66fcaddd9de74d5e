"""`edgefleet model push DIR --server URL`: upload a model directory to the server's registry.

Everything is checked here before anything is sent: the card, the TFLite identifier, report.json
and self_test.json. A directory without self_test.json gets its cases computed with the TFLM
interpreter (and saved there), so devices can check the model before they switch to it.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli.console import console, err_console, fail

if TYPE_CHECKING:
    import httpx

REQUIRED = ("model.tflite", "model_card.json")
FIELDS = {"model.tflite": "model_tflite", "model_card.json": "model_card", "report.json": "report"}
SELF_TEST = "self_test.json"


def push(
    directory: Annotated[Path, typer.Argument(help="Model directory (model.tflite + model_card.json).")],
    server: Annotated[str, typer.Option("--server", help="Server URL, e.g. http://127.0.0.1:8000.")],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="EDGEFLEET_API_KEY", help="An admin's API key (efk_...)."),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Make it the default model of its device kind.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 60.0,
) -> None:
    """Upload a model directory to the server's registry (signed there with your organization's key)."""
    if not api_key:
        fail("an API key is needed: pass --api-key or set EDGEFLEET_API_KEY (make one on the Account page)")
    if not server.startswith(("http://", "https://")):
        fail(f"--server must be an http:// or https:// URL, not {server!r}")
    parts, n_cases = _read_directory(directory)
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with (
            httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout) as client,
            err_console.status(f"uploading {directory} to {server}"),
        ):
            model = _answer(client.post("/api/v1/models", files=parts), "upload")
            if default:
                model = _answer(client.post(f"/api/v1/models/{model['id']}/default"), "set default")
    except httpx.TransportError as err:
        fail(f"cannot reach the server at {server}: {err}")
    console.print(f"[bold]{model['model_id']}[/] {model['version']} is model {model['id']} in the registry")
    console.print(f"  device kind  {model['device_kind']}")
    console.print(f"  sha256       {model['sha256']} ({model['size']} bytes)")
    console.print(f"  signed with  key {model['key_id']}")
    console.print(f"  self-test    {n_cases} cases")
    if model["is_default"]:
        console.print(f"  default for  {model['device_kind']} devices")


def _read_directory(directory: Path) -> tuple[dict[str, tuple[str, bytes, str]], int]:
    """The multipart parts and the number of self-test cases; fails (exit 1) on anything wrong."""
    from pydantic import ValidationError

    from edgefleet.contracts import ModelCard
    from edgefleet.contracts.model_package import PackageError, build_package

    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        fail(f"{directory} lacks {' and '.join(missing)} (export a model with `edgefleet model train`)")
    data = {name: (directory / name).read_bytes() for name in FIELDS if (directory / name).is_file()}
    try:
        card = ModelCard.model_validate_json(data["model_card.json"])
        build_package(data["model.tflite"], data["model_card.json"])
    except ValidationError as err:
        fail(f"{directory / 'model_card.json'} is not a valid model card: {err.errors()[0]['msg']}")
    except PackageError as err:
        fail(f"{directory}: {err}")
    if "report.json" in data:
        _check_json_object(directory / "report.json", data["report.json"])
    cases = _self_test(directory, card)
    parts = {FIELDS[name]: (name, body, "application/octet-stream") for name, body in data.items()}
    if cases is not None:
        parts["self_test"] = (SELF_TEST, json.dumps(cases).encode(), "application/json")
    return parts, len(cases or [])


def _check_json_object(path: Path, body: bytes) -> None:
    try:
        value = json.loads(body)
    except ValueError as err:
        fail(f"{path} is not JSON: {err}")
    if not isinstance(value, dict):
        fail(f"{path} must hold a JSON object")


def _self_test(directory: Path, card: Any) -> list[dict[str, Any]] | None:
    """The directory's self-test cases, computed (and saved) when there are none."""
    from edgefleet.ml import ExportError
    from edgefleet.ml.selftest import MAX_OUTPUTS, load_self_test, make_self_test, write_self_test

    path = directory / SELF_TEST
    if path.is_file():
        try:
            return [case.model_dump(mode="json") for case in load_self_test(path)]
        except ExportError as err:
            fail(str(err))
    n_out = 1
    for dim in card.output.shape:
        n_out *= dim
    if card.input.dtype != "int8" or card.output.dtype != "int8" or n_out > MAX_OUTPUTS:
        err_console.print("note: no self-test cases (they need int8 input and output, at most 64 outputs)")
        return None
    try:
        with err_console.status("computing self-test cases with the TFLM interpreter"):
            cases = make_self_test(directory)
    except ExportError as err:
        fail(f"the model does not run in the TFLM interpreter, so devices could not run it: {err}")
    try:
        write_self_test(directory, cases)
        err_console.print(f"wrote {len(cases)} self-test cases to {path}")
    except ExportError as err:
        err_console.print(f"note: {err}; uploading the cases anyway")
    return [case.model_dump(mode="json") for case in cases]


def _answer(response: "httpx.Response", what: str) -> dict[str, Any]:
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text[:500]
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
    reasons = {
        401: "the server refused the API key",
        403: "the API key's user may not do this (pushing models needs the admin role)",
        409: "already in the registry",
        413: "too large",
        422: "the server refused the model",
    }
    reason = reasons.get(response.status_code, f"the server answered {response.status_code}")
    fail(f"{what} failed: {reason}: {detail}")
