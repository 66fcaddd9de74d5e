"""Volume, mass, bounding box and a simple print-time estimate per part.

Print-time model (deliberately simple, stated so it can be argued with):

    time = start_overhead + volume / flow_rate + layers * layer_overhead
    layers = ceil(height_as_printed / layer_height)

Assumptions: the part is printed solid (these housings are walls of a few perimeters, and the
vibration base should be printed at 100 % infill for stiffness anyway), so the extruded volume is
the solid's volume; `flow_rate` is the average volumetric rate over the whole print (a stock
0.4 mm nozzle at 0.2 mm layers averages about 4-6 mm³/s once slow perimeters and the first layer
are counted); `layer_overhead` covers travel, retraction and the layer change; `start_overhead`
covers heating and homing. No supports are needed: the base prints floor down, the lid top down.
Expect a slicer's estimate within about ±30 %.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import manifold3d as m3d

from edgefleet.enclosure.params import Printer

__all__ = ["PartStats", "part_stats"]


@dataclass(frozen=True)
class PartStats:
    name: str
    volume_cm3: float
    mass_g: float
    size_mm: tuple[float, float, float]
    """Bounding box as printed (x, y, z)."""
    layers: int
    print_time_s: float

    @property
    def print_time_text(self) -> str:
        minutes = round(self.print_time_s / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size_mm"] = list(self.size_mm)
        data["print_time"] = self.print_time_text
        return data


def part_stats(name: str, solid: m3d.Manifold, printer: Printer) -> PartStats:
    """Figures for one part in its print orientation (resting on z = 0)."""
    volume = solid.volume()
    x0, y0, z0, x1, y1, z1 = solid.bounding_box()
    height = z1 - z0
    layers = max(1, math.ceil(height / printer.layer_height - 1e-9))
    seconds = printer.start_overhead + volume / printer.flow_rate + layers * printer.layer_overhead
    return PartStats(
        name=name,
        volume_cm3=volume / 1000.0,
        mass_g=volume / 1000.0 * printer.density,
        size_mm=(x1 - x0, y1 - y0, height),
        layers=layers,
        print_time_s=seconds,
    )
