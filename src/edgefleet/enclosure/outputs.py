"""Write a built housing to a directory: STL and 3MF per part, PNG preview, summary JSON."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from edgefleet.enclosure.checks import CheckResult
from edgefleet.enclosure.estimate import PartStats, part_stats
from edgefleet.enclosure.export import write_part
from edgefleet.enclosure.render import render_png
from edgefleet.enclosure.solids import Enclosure

__all__ = ["Outputs", "stem", "write_outputs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outputs:
    files: list[Path]
    stats: list[PartStats]


def stem(enclosure: Enclosure) -> str:
    return f"enclosure-{enclosure.layout.kind}-{enclosure.layout.board.name}"


def write_outputs(
    enclosure: Enclosure, directory: Path, checks: list[CheckResult] | None = None, preview: bool = True
) -> Outputs:
    """Write base and lid (print orientation) as STL and 3MF, a preview PNG and `<stem>.json`."""
    layout = enclosure.layout
    name = stem(enclosure)
    parts = {"base": enclosure.base, "lid": enclosure.lid_for_print()}
    files: list[Path] = []
    stats = []
    for part, solid in parts.items():
        files += write_part(solid, directory, f"{name}-{part}")
        stats.append(part_stats(part, solid, layout.params.printer))
    if preview:
        png = directory / f"{name}.png"
        png.write_bytes(render_png(enclosure, title=f"{layout.kind} housing, {layout.board.name}"))
        files.append(png)
    summary = {
        "kind": layout.kind,
        "board": layout.board.name,
        "sensor": layout.sensor.name if layout.sensor else None,
        "outer_mm": list(layout.outer.size),
        "params": layout.params.model_dump(mode="json"),
        "parts": [s.as_dict() for s in stats],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks or []],
    }
    summary_path = directory / f"{name}.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    files.append(summary_path)
    logger.info("wrote %d files to %s", len(files), directory)
    return Outputs(files=files, stats=stats)
