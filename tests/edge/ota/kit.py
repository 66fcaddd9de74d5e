"""Test kit for OTA: signing keys, manifests, self-test vectors and a real HTTP package server.

The package server is a `ThreadingHTTPServer` with HTTP Basic auth and `Range: bytes=N-`
support (206), logging every request, with knobs to fail, throttle, drop connections or ignore
Range, so downloads can be interrupted and resumed against something real.
"""

import base64
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgefleet.contracts import ModelManifest, SelfTestCase, build_package, key_id_for, sha256_hex
from edgefleet.edge.backends import create_backend
from edgefleet.edge.config import TrustedKey
from edgefleet.edge.model import load_model_dir

USER, SECRET = "dev-ota", "s3cret-device"


@dataclass
class SigningKey:
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_b64(self) -> str:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_b64)

    @property
    def trusted(self) -> TrustedKey:
        return TrustedKey(key_id=self.key_id, public_key=self.public_b64)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode()


def copy_model(source: Path, target: Path, **card_changes: Any) -> Path:
    """A copy of a model directory with some card fields changed (e.g. model_version)."""
    shutil.copytree(source, target)
    card = json.loads((target / "model_card.json").read_text(encoding="utf-8"))
    for key, value in card_changes.items():
        node, *path = key.split("__")
        holder = card
        for part in [node, *path][:-1]:
            holder = holder[part]
        holder[[node, *path][-1]] = value
    (target / "model_card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return target


def package_of(model_dir: Path) -> bytes:
    return build_package(
        (model_dir / "model.tflite").read_bytes(), (model_dir / "model_card.json").read_bytes()
    )


def self_test_cases(model_dir: Path, n: int = 3, seed: int = 0) -> list[SelfTestCase]:
    """Inputs and the model's own int8 outputs (from the TFLM interpreter, as the factory makes them)."""
    bundle = load_model_dir(model_dir)
    backend = create_backend("tflm", bundle)
    size = int(np.prod(bundle.card.input.shape))
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        x = rng.integers(-60, 60, size=size).astype(np.int8)
        y = np.asarray(backend.invoke(x), dtype=np.int64).ravel()
        cases.append(SelfTestCase(input_int8=x.tolist(), expected_int8=y.tolist(), tolerance=1))
    return cases


def manifest_for(
    package: bytes,
    url: str,
    key: SigningKey,
    self_test: list[SelfTestCase],
    **overrides: Any,
) -> ModelManifest:
    from edgefleet.contracts import read_package

    parsed = read_package(package)
    fields: dict[str, Any] = {
        "model_id": parsed.card.model_id,
        "model_version": parsed.card.model_version,
        "url": url,
        "sha256": sha256_hex(package),
        "size": len(package),
        "min_runtime_version": "0.1.0",
        "signature": key.sign(package),
        "key_id": key.key_id,
        "model_card_sha256": parsed.card_sha256,
        "self_test": self_test,
    }
    fields.update(overrides)
    return ModelManifest.model_validate(fields)


@dataclass
class PackageServer:
    """Serves `files[path]` to clients that authenticate as (USER, SECRET)."""

    files: dict[str, bytes] = field(default_factory=dict)
    username: str = USER
    password: str = SECRET
    chunk: int = 1024
    delay_s: float = 0.0
    fail_next: int = 0
    drop_after: int | None = None
    ignore_range: bool = False
    oversize_by: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> "PackageServer":
        kit = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                kit._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def ranges(self, path: str) -> list[str | None]:
        return [r["range"] for r in self.requests if r["path"] == path and r["status"] in (200, 206)]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        entry: dict[str, Any] = {"path": request.path, "range": request.headers.get("Range")}
        self.requests.append(entry)
        if header != expected:
            entry["status"] = 401
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="ota"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        if self.fail_next > 0:
            self.fail_next -= 1
            entry["status"] = 503
            request.send_response(503)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        data = self.files.get(request.path)
        if data is None:
            entry["status"] = 404
            request.send_response(404)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        data = data + b"\0" * self.oversize_by
        start = 0
        wanted = entry["range"]
        if wanted and not self.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                entry["status"] = 416
                request.send_response(416)
                request.send_header("Content-Range", f"bytes */{len(data)}")
                request.send_header("Content-Length", "0")
                request.end_headers()
                return
        entry["status"] = 206 if start else 200
        request.send_response(entry["status"])
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.send_header("Content-Length", str(len(data) - start))
        request.send_header("Accept-Ranges", "bytes")
        request.end_headers()
        body = data[start:]
        limit = len(body)
        if self.drop_after is not None:
            limit, self.drop_after = min(limit, self.drop_after), None
        sent = 0
        try:
            while sent < limit:
                piece = body[sent : min(limit, sent + self.chunk)]
                request.wfile.write(piece)
                request.wfile.flush()
                sent += len(piece)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except (BrokenPipeError, ConnectionResetError):
            pass
        entry["sent"] = sent
        if sent < len(body):
            request.close_connection = True
