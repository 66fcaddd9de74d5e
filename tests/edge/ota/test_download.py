"""Downloads against a real HTTP server: Basic auth, Range resume, size cap, retries, cancel."""

import threading
from pathlib import Path

import pytest

from edgefleet.contracts import ModelManifest
from edgefleet.edge.ota.download import DownloadOptions, download_package
from edgefleet.edge.ota.errors import CancelledError, DownloadError
from tests.edge.ota.conftest import PACKAGE_PATH, Models
from tests.edge.ota.kit import SECRET, USER, PackageServer

FAST = DownloadOptions(USER, SECRET, attempts=3, timeout_s=5.0, backoff_min_s=0.01, backoff_max_s=0.05)


def test_a_download_authenticates_and_reports_progress(
    manifest: ModelManifest, server: PackageServer, models: Models, tmp_path: Path
) -> None:
    part = tmp_path / "package.part"
    seen: list[int] = []
    fetched = download_package(manifest, part, FAST, progress=lambda have, size: seen.append(have))
    assert part.read_bytes() == models.v2_package and fetched == len(models.v2_package)
    assert seen == sorted(seen) and seen[-1] == manifest.size and len(seen) >= 2
    assert server.ranges(PACKAGE_PATH) == [None]


def test_a_partial_download_resumes_with_range(
    manifest: ModelManifest, server: PackageServer, models: Models, tmp_path: Path
) -> None:
    part = tmp_path / "package.part"
    part.write_bytes(models.v2_package[:4096])
    fetched = download_package(manifest, part, FAST)
    assert part.read_bytes() == models.v2_package
    assert fetched == len(models.v2_package) - 4096, "only the missing bytes travel"
    assert server.ranges(PACKAGE_PATH) == ["bytes=4096-"]


def test_a_dropped_connection_is_resumed_where_it_broke(
    manifest: ModelManifest, server: PackageServer, models: Models, tmp_path: Path
) -> None:
    server.drop_after = 5000
    part = tmp_path / "package.part"
    download_package(manifest, part, FAST)
    assert part.read_bytes() == models.v2_package
    ranges = server.ranges(PACKAGE_PATH)
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(str(ranges[1]).removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 5000


def test_a_server_that_ignores_range_restarts_from_zero(
    manifest: ModelManifest, server: PackageServer, models: Models, tmp_path: Path
) -> None:
    server.ignore_range = True
    part = tmp_path / "package.part"
    part.write_bytes(b"X" * 3000)  # wrong bytes: a 200 must replace them, not append
    download_package(manifest, part, FAST)
    assert part.read_bytes() == models.v2_package


def test_transient_errors_are_retried_and_refusals_are_final(
    manifest: ModelManifest, server: PackageServer, models: Models, tmp_path: Path
) -> None:
    server.fail_next = 2
    part = tmp_path / "package.part"
    download_package(manifest, part, FAST)
    assert part.read_bytes() == models.v2_package
    server.fail_next = 10
    part.unlink()
    with pytest.raises(DownloadError) as err:
        download_package(manifest, part, FAST)
    assert err.value.reason == "download_failed" and "503" in str(err.value)
    server.fail_next = 0
    with pytest.raises(DownloadError) as err:
        download_package(manifest, part, DownloadOptions(USER, "wrong", attempts=3))
    assert err.value.reason == "download_refused" and "401" in str(err.value)
    missing = manifest.model_copy(update={"url": server.url("/nope")})
    with pytest.raises(DownloadError) as err:
        download_package(missing, part, FAST)
    assert err.value.reason == "download_refused" and "404" in str(err.value)


def test_an_unreachable_server_gives_up_after_the_attempts(manifest: ModelManifest, tmp_path: Path) -> None:
    from tests.support.services import free_port

    dead = manifest.model_copy(update={"url": f"http://127.0.0.1:{free_port()}/p"})
    with pytest.raises(DownloadError) as err:
        download_package(dead, tmp_path / "p", FAST)
    assert err.value.reason == "download_failed" and "3 attempts" in str(err.value)


def test_more_bytes_than_the_manifest_says_are_refused(
    manifest: ModelManifest, server: PackageServer, tmp_path: Path
) -> None:
    server.oversize_by = 100
    with pytest.raises(DownloadError) as err:
        download_package(manifest, tmp_path / "p", FAST)
    assert err.value.reason == "oversize"
    assert server.requests[-1]["status"] == 200


def test_a_download_can_be_cancelled(manifest: ModelManifest, server: PackageServer, tmp_path: Path) -> None:
    server.chunk, server.delay_s = 512, 0.05
    cancel = threading.Event()

    def progress(have: int, size: int) -> None:
        if have >= 4096:
            cancel.set()

    with pytest.raises(CancelledError):
        download_package(manifest, tmp_path / "p", FAST, cancel=cancel, progress=progress)
    assert 4096 <= (tmp_path / "p").stat().st_size < manifest.size
