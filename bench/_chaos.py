"""The chaos suite's harness for `bench/chaos.py` (not a benchmark: the leading underscore hides it).

One harness serves both: `tests/chaos/harness.py` (with the test support it uses: a private
Mosquitto, a fresh PostgreSQL database, a TCP proxy) is imported from the source checkout, whose
root goes on the import path here.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.chaos.harness import (  # noqa: E402 - the checkout's root must be on the path first
    FAULTS,
    CannotInjectError,
    ChaosOptions,
    ChaosResult,
    run_fault,
)
from tests.support.services import SERVICE_CHECKS  # noqa: E402

__all__ = ["FAULTS", "SERVICE_CHECKS", "CannotInjectError", "ChaosOptions", "ChaosResult", "run_fault"]
