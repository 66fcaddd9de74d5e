"""Build the base and lid solids of a planned housing with manifold3d."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import manifold3d as m3d

from edgefleet.enclosure.errors import GeometryError
from edgefleet.enclosure.layout import Layout, plan
from edgefleet.enclosure.params import SCREWS, EnclosureParams, Kind
from edgefleet.enclosure.placement import Mounted
from edgefleet.enclosure.profiles import Profile
from edgefleet.enclosure.shapes import Box, box, cylinder, union_all
from edgefleet.enclosure.supports import (
    axis_marks,
    collar,
    hold_down_pins,
    pedestal,
    posts,
    standoffs,
    vibration_mount_cuts,
)

__all__ = ["Enclosure", "build", "generate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enclosure:
    """Base and lid in the assembled position, plus what the checks need to know."""

    layout: Layout
    base: m3d.Manifold
    lid: m3d.Manifold
    base_shell: m3d.Manifold
    """The base without the parts meant to touch a board (posts, standoffs, pedestal)."""
    lid_shell: m3d.Manifold
    """The lid without the parts meant to touch a board (hold-down pins, camera collar)."""

    def lid_for_print(self) -> m3d.Manifold:
        """The lid turned over (top face on the bed), resting on z = 0."""
        flipped = self.lid.rotate((180.0, 0.0, 0.0))
        low = flipped.bounding_box()[2]
        return flipped.translate((0.0, 0.0, -low))


def _check_valid(solid: m3d.Manifold, name: str) -> m3d.Manifold:
    status = solid.status()
    if status != m3d.Error.NoError:
        raise GeometryError(f"the {name} is not a valid solid: {status}")
    if solid.is_empty():
        raise GeometryError(f"the {name} came out empty")
    return solid


def _vent_slots(layout: Layout) -> list[m3d.Manifold]:
    p = layout.params
    w = p.wall
    if not p.vents:
        return []
    c = layout.cavity
    z0 = c.z0 + 1.5
    z1 = layout.top - max(layout.lip_depth, w) - 1.0
    if z1 - z0 < 3.0:
        logger.info("no room for vent slots (wall height %.1f mm)", z1 - z0)
        return []
    reach = layout.boss_offset + layout.boss_radius + w if p.fastening == "screws" else w
    low, high = c.x0 + reach, c.x1 - reach
    for pad in _snap_spans(layout):
        # keep the slots between the two snap pads
        if pad[1] < (c.x0 + c.x1) / 2:
            low = max(low, pad[1] + w)
        else:
            high = min(high, pad[0] - w)
    pitch = p.vent_width + w
    count = min(12, int((high - low + w) // pitch))
    if count < 1:
        return []
    start = (low + high) / 2 - (count * pitch - w) / 2
    return [
        box(
            Box(
                start + i * pitch, c.y1 - 0.5, z0, start + i * pitch + p.vent_width, layout.outer.y1 + 0.5, z1
            )
        )
        for i in range(count)
    ]


def _snap_spans(layout: Layout) -> list[tuple[float, float]]:
    """x extents of the snap pads on the long walls (with their wall margin)."""
    p = layout.params
    if p.fastening != "snap":
        return []
    c = layout.cavity
    half = 3.0 + p.tolerance + p.wall
    return [(x - half, x + half) for x in (c.x0 + 0.25 * (c.x1 - c.x0), c.x0 + 0.75 * (c.x1 - c.x0))]


def _snap_features(layout: Layout) -> tuple[list[m3d.Manifold], list[m3d.Manifold], list[m3d.Manifold]]:
    """(pads added outside the base walls, grooves cut into them, bumps on the lid's lip)."""
    p = layout.params
    if p.fastening != "snap":
        return [], [], []
    w, tol = p.wall, p.tolerance
    c, top = layout.cavity, layout.top
    depth = 0.5 + tol  # the bump reaches 0.5 mm into the wall beyond the lip's tolerance gap
    bump_z = (top - w - tol - w, top - w - tol)
    groove_z = (bump_z[0] - tol, bump_z[1] + tol)
    pad_z = (groove_z[0] - w, min(groove_z[1] + w, top))
    pads, grooves, bumps = [], [], []
    for x in (c.x0 + 0.25 * (c.x1 - c.x0), c.x0 + 0.75 * (c.x1 - c.x0)):
        for side in (-1, 1):  # -y wall, +y wall; `side` points outward
            wall_face = c.y0 if side < 0 else c.y1
            outer_face = wall_face + side * w
            lip_face = wall_face - side * tol
            groove_x = (x - 3.0 - tol, x + 3.0 + tol)
            pad_x = (groove_x[0] - w, groove_x[1] + w)
            grooves.append(box(_span_y(groove_x, wall_face - side, wall_face + side * depth, groove_z)))
            pads.append(box(_span_y(pad_x, outer_face - side * 0.01, outer_face + side * depth, pad_z)))
            bumps.append(
                box(_span_y((x - 3.0, x + 3.0), lip_face - side * 0.01, lip_face + side * 0.5, bump_z))
            )
    return pads, grooves, bumps


def _span_y(x: tuple[float, float], ya: float, yb: float, z: tuple[float, float]) -> Box:
    return Box(x[0], min(ya, yb), z[0], x[1], max(ya, yb), z[1])


def _base(layout: Layout) -> tuple[m3d.Manifold, m3d.Manifold]:
    p = layout.params
    w = p.wall
    o, c, top = layout.outer, layout.cavity, layout.top
    shell = box(o) - box(Box(c.x0, c.y0, c.z0, c.x1, c.y1, top + 1.0))
    extra: list[m3d.Manifold] = []
    cuts: list[m3d.Manifold] = []
    screw = SCREWS[p.screw]
    for x, y in layout.boss_centers:
        extra.append(cylinder(x, y, c.z0 - 0.5, top, layout.boss_radius))
        depth = min(p.screw_depth, top - w)
        cuts.append(cylinder(x, y, top - depth, top + 1.0, screw.pilot / 2))
    pads, grooves, _ = _snap_features(layout)
    extra += pads
    cuts += grooves
    if layout.kind == "vibration":
        extra += axis_marks(layout)
        cuts += vibration_mount_cuts(layout)
    cuts += [box(b) for b in layout.usb_cuts]
    cuts += _vent_slots(layout)
    if layout.gland is not None:
        y, z = layout.gland
        hole = cylinder(0.0, 0.0, -1.0, w + 1.0, p.gland_hole / 2).rotate((0.0, 90.0, 0.0))
        cuts.append(hole.translate((o.x0, y, z)))
    supports = union_all(_base_supports(layout, item) for item in layout.items)
    body = union_all([shell, *extra])
    removed = union_all(cuts)
    full = union_all([body, supports]) - removed
    return full, body - removed


def _base_supports(layout: Layout, item: Mounted) -> m3d.Manifold:
    if item.support == "posts":
        return posts(layout, item)
    if item.support == "standoffs":
        return standoffs(layout, item)
    if item.support == "pedestal":
        return pedestal(layout, item)
    return m3d.Manifold()


def _lens_aperture(layout: Layout, item: Mounted) -> m3d.Manifold:
    lens = item.lens
    if lens is None or lens.diameter is None:
        return m3d.Manifold()
    cx, cy = (lens.box.x0 + lens.box.x1) / 2, (lens.box.y0 + lens.box.y1) / 2
    radius = layout.aperture_radius(lens.diameter, lens.box.z1)
    return cylinder(cx, cy, layout.top - 0.5, layout.lid_top + 0.5, radius)


def _lid(layout: Layout) -> tuple[m3d.Manifold, m3d.Manifold]:
    p = layout.params
    w, tol = p.wall, p.tolerance
    o, c, top = layout.outer, layout.cavity, layout.top
    plate = box(Box(o.x0, o.y0, top, o.x1, o.y1, top + w))
    lip_outer = Box(c.x0 + tol, c.y0 + tol, top - layout.lip_depth, c.x1 - tol, c.y1 - tol, top + 0.5)
    lip_inner = Box(
        lip_outer.x0 + w, lip_outer.y0 + w, lip_outer.z0 - 1.0, lip_outer.x1 - w, lip_outer.y1 - w, top
    )
    lip = box(lip_outer) - box(lip_inner)
    cuts: list[m3d.Manifold] = []
    screw = SCREWS[p.screw]
    for x, y in layout.boss_centers:
        # square notches: a round one would leave acute, paper-thin lip ends
        reach = layout.boss_radius + tol
        lip = lip - box(Box(x - reach, y - reach, top - layout.lip_depth - 1.0, x + reach, y + reach, top))
        cuts.append(cylinder(x, y, top - 1.0, layout.lid_top + 1.0, screw.clearance / 2))
    for cut in layout.usb_cuts:
        # no lip at all under the opening: a strip below it could be thinner than a wall
        lip = lip - box(Box(cut.x0 - tol, cut.y0 - tol, cut.z0 - 100.0, cut.x1, cut.y1 + tol, cut.z1 + tol))
    _, _, bumps = _snap_features(layout)
    if layout.kind == "camera":
        cuts += [_lens_aperture(layout, item) for item in layout.items]
    supports = union_all(
        [
            *(hold_down_pins(layout, item) for item in layout.items if item.support == "posts"),
            *(collar(layout, item) for item in layout.items if item.support == "collar"),
        ]
    )
    body = union_all([plate, lip, *bumps])
    removed = union_all(cuts)
    return union_all([body, supports]) - removed, body - removed


def build(layout: Layout) -> Enclosure:
    """CSG of both parts for a planned layout."""
    base, base_shell = _base(layout)
    lid, lid_shell = _lid(layout)
    return Enclosure(
        layout=layout,
        base=_check_valid(base, "base"),
        lid=_check_valid(lid, "lid"),
        base_shell=_check_valid(base_shell, "base shell"),
        lid_shell=_check_valid(lid_shell, "lid shell"),
    )


def generate(
    kind: Kind,
    board: str | Profile,
    sensor: str | Profile | None = None,
    params: EnclosureParams | None = None,
) -> Enclosure:
    """Plan and build the housing of `kind` for `board` (and `sensor`), by name or profile."""
    layout = plan(kind, board, sensor, params or EnclosureParams())
    logger.info(
        "building %s housing for %s: outer %.1f x %.1f x %.1f mm",
        kind,
        layout.board.name,
        *layout.outer.size,
    )
    return build(layout)
