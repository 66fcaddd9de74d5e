"""Fetch a model package over HTTP(S): Basic auth, resumable (`Range: bytes=N-`), size-capped.

The download goes to `<inactive slot>/package.part`. A restart continues from the bytes already
there: 206 appends, 200 (a server that ignores Range) starts again from zero. Network errors and
5xx answers are retried with exponential backoff and jitter; refusals (401, 403, 404, 410) and a
package larger than the manifest says are final.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from edgefleet.contracts import ModelManifest
from edgefleet.edge.link import Backoff
from edgefleet.edge.ota.errors import CancelledError, DownloadError

log = logging.getLogger(__name__)

CHUNK_BYTES: Final = 4096
_FINAL_STATUS: Final = {401: "unauthorized", 403: "forbidden", 404: "not_found", 410: "gone"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DownloadOptions:
    username: str | None = None
    password: str | None = None
    attempts: int = 8
    timeout_s: float = 30.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


def _have(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def download_package(
    manifest: ModelManifest,
    part: Path,
    options: DownloadOptions,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Bring `part` to `manifest.size` bytes from `manifest.url`; returns the bytes fetched now.

    Raises DownloadError (reason `download_refused`, `oversize`, `download_failed`) or
    CancelledError when `cancel` is set.
    """
    cancel = cancel or threading.Event()
    size = manifest.size
    auth = httpx.BasicAuth(options.username, options.password or "") if options.username else None
    backoff = Backoff(options.backoff_min_s, options.backoff_max_s)
    fetched = 0
    failures = 0
    last_error = "no attempt"
    with httpx.Client(auth=auth, timeout=options.timeout_s, transport=transport) as client:
        while True:
            if cancel.is_set():
                raise CancelledError("cancelled", "the download was cancelled")
            have = _have(part)
            if have > size:  # a leftover from something else: start over
                part.unlink()
                have = 0
            if have == size:
                return fetched
            if failures >= options.attempts:
                raise DownloadError(
                    "download_failed", f"gave up after {failures} attempts without progress: {last_error}"
                )
            before = have
            try:
                fetched += _fetch(
                    client, manifest.url, part, have=have, size=size, cancel=cancel, progress=progress
                )
            except httpx.HTTPError as err:
                last_error = f"{type(err).__name__}: {err}"
            except _RetryableStatusError as err:
                last_error = str(err)
            if _have(part) > before:
                failures = 0
                backoff.reset()
                continue
            failures += 1
            delay = backoff.next_delay()
            log.info("download of %s failed (%s); retry in %.2f s", manifest.url, last_error, delay)
            if cancel.wait(delay):
                raise CancelledError("cancelled", "the download was cancelled")


class _RetryableStatusError(Exception):
    """A status worth another attempt (5xx, 429, a Range the server could not satisfy)."""


def _fetch(
    client: httpx.Client,
    url: str,
    part: Path,
    *,
    have: int,
    size: int,
    cancel: threading.Event,
    progress: Progress | None,
) -> int:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers) as response:
        status = response.status_code
        if status in _FINAL_STATUS:
            raise DownloadError("download_refused", f"the server answered {status} ({_FINAL_STATUS[status]})")
        if status == 416:  # our part is not a prefix of what the server has: start over
            part.unlink(missing_ok=True)
            raise _RetryableStatusError("416: range not satisfiable; restarting from zero")
        if status == 206:
            content_range = response.headers.get("content-range", "")
            if not content_range.startswith(f"bytes {have}-"):
                part.unlink(missing_ok=True)
                raise _RetryableStatusError(f"206 with unexpected Content-Range {content_range!r}")
            mode = "ab"
        elif status == 200:
            have, mode = 0, "wb"
        else:
            raise _RetryableStatusError(f"HTTP {status}")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and have + int(length) > size:
            raise DownloadError(
                "oversize", f"the server offers {have + int(length)} bytes; the manifest says {size}"
            )
        fetched = 0
        with part.open(mode) as handle:
            try:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    if cancel.is_set():
                        raise CancelledError("cancelled", "the download was cancelled")
                    if have + len(chunk) > size:
                        raise DownloadError(
                            "oversize", f"the package is larger than the {size} bytes announced"
                        )
                    handle.write(chunk)
                    handle.flush()
                    have += len(chunk)
                    fetched += len(chunk)
                    if progress is not None:
                        progress(have, size)
            finally:
                handle.flush()
                os.fsync(handle.fileno())
        return fetched
