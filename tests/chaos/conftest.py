"""The `chaos` fixture: run one fault against the real stack in the test's temporary directory."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import CannotInjectError, ChaosOptions, ChaosResult, run_fault
from tests.support.services import in_ci

# 12 devices at 120 messages/s; each fault lasts 6 s (the suite: about 3 minutes on 2 cores)
SUITE = ChaosOptions()


@pytest.fixture
def chaos(tmp_path: Path) -> Callable[..., ChaosResult]:
    def run(fault: str, **options: Any) -> ChaosResult:
        try:
            return run_fault(fault, replace(SUITE, **options), tmp_path / fault)
        except CannotInjectError as err:
            if in_ci():
                pytest.fail(f"CI requires the {fault} fault: {err}", pytrace=False)
            pytest.skip(f"{fault}: {err}")

    return run
