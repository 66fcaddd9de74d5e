"""Shared, cached housings for the enclosure tests (each combination is built once per run)."""

from functools import cache

from edgefleet.enclosure import Enclosure, generate, parse_params

BOARDS = ("esp32-s3-devkitc-1", "xiao-esp32s3-sense", "esp32-s3-eye")
KINDS = ("vibration", "camera")


@cache
def housing(kind: str, board: str, fastening: str = "screws") -> Enclosure:
    return generate(kind, board, None, parse_params(fastening=fastening))  # type: ignore[arg-type]
