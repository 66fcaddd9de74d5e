"""HTTP byte ranges (RFC 9110, section 14): one `bytes=` range per request, enough to resume a download."""

import re
from typing import Final

_RANGE: Final = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


class RangeNotSatisfiableError(ValueError):
    """A Range header this server cannot serve (malformed, several ranges, or past the end)."""


def byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) byte positions, inclusive, of `bytes=N-`, `bytes=N-M` or `bytes=-SUFFIX`."""
    match = _RANGE.match(header.strip())
    if match is None:
        raise RangeNotSatisfiableError(
            f"unsupported Range {header!r}: use one bytes=N-, bytes=N-M or bytes=-N"
        )
    first, last = match.groups()
    if not first and not last:
        raise RangeNotSatisfiableError("an empty byte range")
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError("an empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiableError(f"range {start}-{last} is outside the {size} bytes")
    return start, min(end, size - 1)
