"""A real full disk for tests and the chaos benchmark: a small tmpfs (root only) and a file that fills it.

pytest-free, so `bench chaos` can use it too; a test turns `CannotInjectError` into skip or fail.
"""

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


class CannotInjectError(RuntimeError):
    """The fault cannot be injected on this machine (e.g. mounting a tmpfs needs root)."""


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only), always unmounted."""
    if os.geteuid() != 0:
        raise CannotInjectError("a full disk is a small tmpfs: mounting it needs root")
    if shutil.which("mount") is None:
        raise CannotInjectError("no mount command")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        raise CannotInjectError(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=10, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system says ENOSPC (any other error is raised); returns it
    (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk) == size:
                    pass
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
