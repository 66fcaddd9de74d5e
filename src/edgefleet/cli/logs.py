"""Logging for CLI entry points: set up once, to stderr, so stdout stays machine-readable."""

import logging

from rich.logging import RichHandler

from edgefleet.cli.console import err_console

# Libraries that are chatty at INFO.
_QUIET = (
    "absl",
    "tensorflow",
    "h5py",
    "matplotlib",
    "PIL",
    "urllib3",
    "asyncio",
    "amqtt",
    "transitions",
    "alembic",
)


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h, RichHandler) for h in root.handlers):
        root.setLevel(level)
        return
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=True, markup=False)
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]", handlers=[handler])
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
