"""What holds boards and sensors in place, the vibration base's mounting cuts and the axis marks."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import manifold3d as m3d

from edgefleet.enclosure.params import SCREWS
from edgefleet.enclosure.placement import Mounted
from edgefleet.enclosure.shapes import Box, box, cylinder, pointer, union_all

if TYPE_CHECKING:
    from edgefleet.enclosure.layout import Layout

__all__ = [
    "axis_marks",
    "collar",
    "hold_down_pins",
    "pedestal",
    "post_footprints",
    "posts",
    "standoffs",
    "vibration_mount_cuts",
]

MARK_DEPTH = 0.6
"""How far the sensor-axis marks stand proud of the outer wall."""


def post_footprints(layout: Layout, item: Mounted) -> list[tuple[Box, float, float]]:
    """Square contact pads near the PCB's corners: (footprint, lowest z under it, highest z over it).

    Each corner slides inward until no part but the PCB lies over or under the pad; where that
    fails (a stacked board covering the whole outline) the pad stays at the corner and bears on the
    lowest (post) and highest (pin) surface there.
    """
    size = max(layout.params.wall, 2.0)
    pcb = item.pcb
    others = [p.box for p in item.placed[1:]]
    steps = [0.5 * i for i in range(17)]
    offsets = sorted(itertools.product(steps, steps), key=lambda d: (d[0] + d[1], d))
    result = []
    for sx, sy in ((0, 0), (1, 0), (0, 1), (1, 1)):

        def pad(dx: float, dy: float, sx: int = sx, sy: int = sy) -> Box:
            x0 = pcb.x0 + dx if sx == 0 else pcb.x1 - dx - size
            y0 = pcb.y0 + dy if sy == 0 else pcb.y1 - dy - size
            return Box(x0, y0, pcb.z0, x0 + size, y0 + size, pcb.z1)

        chosen = next(
            (pad(dx, dy) for dx, dy in offsets if not any(pad(dx, dy).overlaps_xy(o) for o in others)), None
        )
        if chosen is None:
            chosen = pad(0.0, 0.0)
        touching = [pcb, *(o for o in others if chosen.overlaps_xy(o))]
        result.append((chosen, min(b.z0 for b in touching), max(b.z1 for b in touching)))
    return result


def posts(layout: Layout, item: Mounted) -> m3d.Manifold:
    """Posts from the floor up to the board's underside near its corners."""
    floor = layout.floor
    return union_all(
        box(Box(f.x0, f.y0, floor - 0.5, f.x1, f.y1, low)) for f, low, _ in post_footprints(layout, item)
    )


def hold_down_pins(layout: Layout, item: Mounted) -> m3d.Manifold:
    """Pins from the lid down onto the board over the posts: the board is clamped between them."""
    top = layout.top
    return union_all(
        box(Box(f.x0, f.y0, high, f.x1, f.y1, top + 0.5))
        for f, _, high in post_footprints(layout, item)
        if high < top - 0.1
    )


def standoffs(layout: Layout, item: Mounted) -> m3d.Manifold:
    """Round standoffs with pilot holes under the board's mounting holes."""
    p = layout.params
    pilot = SCREWS[p.screw].pilot
    under = item.pcb.z0
    depth = min(p.screw_depth, under - p.wall)
    solids = []
    for x, y, _ in item.holes:
        post = cylinder(x, y, layout.floor - 0.5, under, pilot / 2 + p.wall)
        solids.append(post - cylinder(x, y, under - depth, under + 1.0, pilot / 2))
    return union_all(solids)


def pedestal(layout: Layout, item: Mounted) -> m3d.Manifold:
    """A solid block the sensor is screwed flat onto, relieved under its solder joints."""
    p = layout.params
    pcb = item.pcb
    rim = p.wall  # the block overhangs the breakout so that no pilot hole comes near its edge
    block = box(Box(pcb.x0 - rim, pcb.y0 - rim, layout.floor - 0.5, pcb.x1 + rim, pcb.y1 + rim, pcb.z0))
    relief = [box(_to_edge(b.box.grow(p.clearance), pcb, rim)) for b in item.placed[1:] if b.box.z0 < pcb.z0]
    pilot = SCREWS[p.sensor_screw].pilot
    depth = min(p.screw_depth, pcb.z0 - p.magnet_height - p.tolerance - p.wall)
    holes = [cylinder(x, y, pcb.z0 - depth, pcb.z0 + 1.0, pilot / 2) for x, y, _ in item.holes]
    return block - union_all([*relief, *holes])


def _to_edge(relief: Box, pcb: Box, rim: float) -> Box:
    """Run a relief that ends near the block's edge right out of it (no sliver of block left)."""
    reach = rim + 1.0
    return Box(
        pcb.x0 - reach if relief.x0 < pcb.x0 + rim else relief.x0,
        pcb.y0 - reach if relief.y0 < pcb.y0 + rim else relief.y0,
        relief.z0,
        pcb.x1 + reach if relief.x1 > pcb.x1 - rim else relief.x1,
        pcb.y1 + reach if relief.y1 > pcb.y1 - rim else relief.y1,
        relief.z1,
    )


def collar(layout: Layout, item: Mounted) -> m3d.Manifold:
    """A square collar under the lid's aperture that holds a camera module's lens holder."""
    p = layout.params
    inner = item.pcb.grow(p.tolerance)
    lens = item.lens
    bore = layout.aperture_radius(lens.diameter or 0.0, lens.box.z1) if lens else 0.0
    cx, cy = (inner.x0 + inner.x1) / 2, (inner.y0 + inner.y1) / 2
    half = max(max(inner.size[0], inner.size[1]) / 2 + p.wall, bore + p.wall)
    outer = Box(cx - half, cy - half, inner.z0, cx + half, cy + half, inner.z1)
    z0, z1 = item.pcb.z1, layout.top + 0.5
    return box(Box(outer.x0, outer.y0, z0, outer.x1, outer.y1, z1)) - box(
        Box(inner.x0, inner.y0, z0 - 1.0, inner.x1, inner.y1, z1 + 1.0)
    )


def vibration_mount_cuts(layout: Layout) -> list[m3d.Manifold]:
    """Magnet pocket in the underside and the M6 stud hole above it, centred under the sensor."""
    p = layout.params
    sensor = layout.items[0].pcb
    cx, cy = (sensor.x0 + sensor.x1) / 2, (sensor.y0 + sensor.y1) / 2
    pocket_top = p.magnet_height + p.tolerance
    return [
        cylinder(cx, cy, -1.0, pocket_top, p.magnet_diameter / 2 + p.tolerance),
        cylinder(cx, cy, -1.0, pocket_top + p.stud_depth, p.stud_tap_drill / 2),
    ]


_DIRECTIONS = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}


def axis_marks(layout: Layout) -> list[m3d.Manifold]:
    """Raised pointers for the sensor's axes: along x on the -y wall, along y on the -x wall, z upright."""
    sensor = layout.items[0]
    axes = sensor.profile.axes
    if axes is None:
        return []
    w = layout.params.wall
    half = 2.0 * w
    length = 3.0 * half
    pcb = sensor.pcb
    cx, cy = (pcb.x0 + pcb.x1) / 2, (pcb.y0 + pcb.y1) / 2
    zc = layout.top * 0.45
    x_dir, y_dir = _DIRECTIONS[axes.x], _DIRECTIONS[axes.y]
    z_sign = x_dir[0] * y_dir[1] - x_dir[1] * y_dir[0]
    base = pointer(length, half, MARK_DEPTH + 0.01).translate((-length / 2, 0.0, 0.0))
    marks = []
    for vec in (x_dir, y_dir):
        sign = vec[0] + vec[1]
        shape = base if sign > 0 else base.mirror((1.0, 0.0, 0.0))
        if vec[0] != 0:  # along x: on the -y wall, thickness pointing -y
            marks.append(shape.rotate((90.0, 0.0, 0.0)).translate((cx, 0.01, zc)))
        else:  # along y: on the -x wall, thickness pointing -x
            marks.append(shape.rotate((0.0, 0.0, 90.0)).rotate((0.0, -90.0, 0.0)).translate((0.01, cy, zc)))
    upright = base if z_sign > 0 else base.mirror((1.0, 0.0, 0.0))
    marks.append(
        upright.rotate((90.0, 0.0, 0.0))
        .rotate((0.0, -90.0, 0.0))
        .translate((cx + length / 2 + half + 3.0, 0.01, zc))
    )
    return marks
