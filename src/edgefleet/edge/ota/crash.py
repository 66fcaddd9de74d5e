"""Test hook for the interruption matrix: die like a power cut at a named step of an update.

With `EDGEFLEET_OTA_CRASH_AT` set to one of CRASH_POINTS the agent calls `os._exit(137)` there
(no cleanup, no flush of anything not yet on disk). Production devices never set it.
"""

import logging
import os
from typing import Final

log = logging.getLogger(__name__)

CRASH_ENV: Final = "EDGEFLEET_OTA_CRASH_AT"
CRASH_POINTS: Final = ("downloading", "downloaded", "verified", "switching", "pending")


def crash_point(name: str) -> None:
    """Exit at once with status 137 when the test hook names this point."""
    if os.environ.get(CRASH_ENV) == name:
        log.critical("%s=%s: simulating a power cut", CRASH_ENV, name)
        os._exit(137)
