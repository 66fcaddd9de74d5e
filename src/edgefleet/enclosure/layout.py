"""Plan a housing: where each board goes and how large every feature is, before any CSG.

Frame: x along the housing's length, y across, z up from the bottom of the base (the bed when the
base prints). The base spans z = 0..`top`, the lid's plate z = `top`..`top + wall`, its lip hangs
into the base. Everything impossible is refused here with a `ParameterError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefleet.enclosure.errors import ParameterError
from edgefleet.enclosure.params import SCREWS, EnclosureParams, Kind
from edgefleet.enclosure.placement import Mounted, Support, local_boxes, mount
from edgefleet.enclosure.profiles import USB_KINDS, Profile, get_board, get_sensor
from edgefleet.enclosure.shapes import Box

__all__ = ["Layout", "plan"]

EPS = 1e-9


@dataclass(frozen=True)
class Layout:
    kind: Kind
    params: EnclosureParams
    board: Profile
    sensor: Profile | None
    items: list[Mounted]
    outer: Box
    """The base's outer box (z = 0..top)."""
    cavity: Box
    """The inside of the base: floor top to rim, inner wall faces."""
    lip_depth: float
    boss_offset: float
    boss_radius: float
    usb_cuts: list[Box]
    gland: tuple[float, float] | None
    """(y, z) of the cable-gland hole's centre on the -x wall (camera kind)."""

    @property
    def floor(self) -> float:
        return self.cavity.z0

    @property
    def top(self) -> float:
        return self.outer.z1

    @property
    def lid_top(self) -> float:
        return self.outer.z1 + self.params.wall

    @property
    def boss_centers(self) -> list[tuple[float, float]]:
        if self.params.fastening != "screws":
            return []
        c, s = self.cavity, self.boss_offset
        return [(c.x0 + s, c.y0 + s), (c.x1 - s, c.y0 + s), (c.x0 + s, c.y1 - s), (c.x1 - s, c.y1 - s)]

    def aperture_radius(self, lens_diameter: float, lens_front: float) -> float:
        """A straight bore wide enough that the lid never clips the field of view (no knife edges)."""
        slope = math.tan(math.radians(self.params.field_of_view / 2))
        return lens_diameter / 2 + self.params.clearance + (self.lid_top - lens_front) * slope


def _envelope(profile: Profile, flipped: bool) -> Box:
    return Box.enclosing(p.box for p in local_boxes(profile, flipped))


def _lens_down(profile: Profile) -> bool:
    lens = profile.lens
    return lens is not None and (lens.z[0] + lens.z[1]) / 2 < 0


def _choose_items(kind: Kind, board: Profile, sensor: Profile | None) -> list[tuple[Profile, bool, Support]]:
    """(profile, flipped, support) in the order they sit along x; the board (USB-C end) goes last."""
    board_support: Support = "standoffs" if board.holes else "posts"
    if kind == "vibration":
        imu = sensor or get_sensor("gy-521")
        if imu.role != "imu":
            raise ParameterError(f"the vibration kind needs an IMU sensor; {imu.name!r} is a {imu.role}")
        if not imu.holes:
            raise ParameterError(f"sensor {imu.name!r} has no mounting holes to screw it flat onto the base")
        return [(imu, False, "pedestal"), (board, False, board_support)]
    if board.lens is not None:
        if sensor is not None:
            raise ParameterError(
                f"board {board.name!r} has its own camera; leave out --sensor for the camera kind"
            )
        return [(board, _lens_down(board), board_support)]
    camera = sensor or get_sensor("ov2640-fpc")
    if camera.role != "camera":
        raise ParameterError(f"the camera kind needs a camera; {camera.name!r} is a {camera.role}")
    return [(camera, _lens_down(camera), "collar"), (board, False, board_support)]


def _support_envelope(env: Box, profile: Profile, support: Support, p: EnclosureParams) -> Box:
    w = p.wall
    if support == "pedestal":
        return Box(env.x0 - w, env.y0 - w, env.z0, env.x1 + w, env.y1 + w, env.z1)
    lens = profile.lens
    if support != "collar" or lens is None or lens.diameter is None:
        return env
    # the lens sits `clearance` under a lid `wall` thick (see `Layout.aperture_radius`)
    slope = math.tan(math.radians(p.field_of_view / 2))
    bore = lens.diameter / 2 + p.clearance + (p.clearance + w) * slope
    pcb = profile.pcb
    cx, cy = pcb.length / 2, pcb.width / 2
    half = max(max(pcb.length, pcb.width) / 2 + p.tolerance + w, bore + w)
    return Box(
        min(env.x0, cx - half),
        min(env.y0, cy - half),
        env.z0,
        max(env.x1, cx + half),
        max(env.y1, cy + half),
        env.z1,
    )


def _merge_intervals(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for low, high in sorted(spans):
        if merged and low - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def plan(
    kind: Kind, board_name: str | Profile, sensor_name: str | Profile | None, params: EnclosureParams
) -> Layout:
    """Lay out a housing of `kind` for a board (and sensor), by name or profile; raise if impossible."""
    board = get_board(board_name) if isinstance(board_name, str) else board_name
    if board.role != "board":
        raise ParameterError(f"{board.name!r} is a {board.role}, not a board")
    sensor = get_sensor(sensor_name) if isinstance(sensor_name, str) else sensor_name
    p = params
    w, clr, tol = p.wall, p.clearance, p.tolerance
    chosen = _choose_items(kind, board, sensor)

    screws = p.fastening == "screws"
    screw = SCREWS[p.screw]
    boss_radius = screw.pilot / 2 + w
    boss_offset = max(boss_radius / 2, screw.clearance / 2 + 0.1)
    lip_depth = p.lip_depth if screws else max(p.lip_depth, 3 * w + tol)
    margin = clr + tol + w
    if screws:
        margin = max(margin, boss_offset + (boss_radius + clr) / math.sqrt(2))
    # USB openings keep this far from the cavity's side walls, so the lip left beside them is a wall thick
    boss_reach = (boss_offset + boss_radius if screws else 0.0) + w + 2 * tol

    # --- x: items side by side, the gland's nut space at the -x end (camera kind) --------------
    envelopes = [_envelope(prof, flip) for prof, flip, _ in chosen]
    # a pedestal overhangs its breakout by a wall all round, a collar surrounds the lens bore:
    # lay out by what the support occupies, so neighbours keep clear of it
    envelopes = [
        _support_envelope(env, prof, support, p)
        for env, (prof, _, support) in zip(envelopes, chosen, strict=True)
    ]
    cursor = p.gland_space if kind == "camera" else 0.0
    cursor += margin
    origins_x = []
    for env in envelopes:
        origins_x.append(cursor - env.x0)
        cursor = origins_x[-1] + env.x1 + 2 * clr
    cavity_x1 = cursor - 2 * clr + margin

    # --- y: centred on y = 0 for now; USB openings and the gland may widen the cavity ----------
    half = max((env.y1 - env.y0) / 2 for env in envelopes) + margin
    origins_y = [-(env.y0 + env.y1) / 2 for env in envelopes]
    board_index = len(chosen) - 1
    usb_y = _merge_intervals(
        [
            (
                b.box.y0 + origins_y[board_index] - p.usb_margin,
                b.box.y1 + origins_y[board_index] + p.usb_margin,
            )
            for b in local_boxes(board, chosen[board_index][1])
            if b.kind in USB_KINDS
        ],
        gap=w + 2 * tol,  # the lid's lip is cut `tol` wider than the wall on each side
    )
    for low, high in usb_y:
        half = max(half, -low + boss_reach, high + boss_reach)
    if kind == "camera":
        half = max(half, p.gland_hole / 2 + boss_reach)

    # --- z: floor, heights of the boards, rim -------------------------------------------------
    floor = p.base_thickness if kind == "vibration" else w
    lows: list[float] = []
    needs_top: list[float] = [floor + lip_depth + w]
    for (prof, flip, support), env in zip(chosen, envelopes, strict=True):
        if support == "pedestal":
            low = floor + max(p.pedestal_height, -env.z0 + clr)
        elif support == "collar":
            low = floor + clr - env.z0
        else:
            low = floor + max(p.min_standoff, -env.z0 + clr)
        for b in local_boxes(prof, flip):
            if b.kind in USB_KINDS:
                low = max(low, floor - b.box.z0 + p.usb_margin)
                needs_top.append(low + b.box.z1 + p.usb_margin + tol + w)
        lows.append(low)
        needs_top.append(low + env.z1 + clr)
    if kind == "camera":
        needs_top.append(floor + p.gland_hole + 2 * w + lip_depth)
    top = max(needs_top)

    bottoms = []
    for (prof, flip, support), env, low in zip(chosen, envelopes, lows, strict=True):
        if kind == "camera" and prof.lens is not None:
            want = top - clr - env.z1
            for b in local_boxes(prof, flip):
                if b.kind in USB_KINDS:
                    want = min(want, top - w - tol - p.usb_margin - b.box.z1)
            bottoms.append(max(low, want) if support != "collar" else want)
        else:
            bottoms.append(low)

    # --- shift so the outer box starts at the origin --------------------------------------------
    dx, dy = w, w + half
    items = [
        mount(prof, flip, (ox + dx, oy + dy, oz), support)
        for (prof, flip, support), ox, oy, oz in zip(chosen, origins_x, origins_y, bottoms, strict=True)
    ]
    cavity = Box(dx, w, floor, cavity_x1 + dx, w + 2 * half, top)
    outer = Box(0.0, 0.0, 0.0, cavity.x1 + w, cavity.y1 + w, top)
    ports = [b.box for b in items[-1].usb_ports]
    usb_cuts = []
    for low, high in usb_y:
        inside = [b for b in ports if low + dy <= (b.y0 + b.y1) / 2 <= high + dy]
        z0 = min(b.z0 for b in inside) - p.usb_margin
        z1 = max(b.z1 for b in inside) + p.usb_margin
        usb_cuts.append(Box(items[-1].envelope.x1 + clr, low + dy, z0, outer.x1 + 1.0, high + dy, z1))
    gland = None
    if kind == "camera":
        gland = (cavity.y0 + half, floor + (top - lip_depth - floor) / 2)

    layout = Layout(
        kind=kind,
        params=p,
        board=board,
        sensor=items[0].profile if len(items) > 1 else None,
        items=items,
        outer=outer,
        cavity=cavity,
        lip_depth=lip_depth,
        boss_offset=boss_offset,
        boss_radius=boss_radius,
        usb_cuts=usb_cuts,
        gland=gland,
    )
    _check_feasible(layout)
    return layout


def _check_feasible(layout: Layout) -> None:
    p = layout.params
    w, tol = p.wall, p.tolerance
    bx, by, bz = p.printer.build_volume
    parts = {
        "base": layout.outer.size,
        "lid": (layout.outer.size[0], layout.outer.size[1], w + layout.lip_depth),
    }
    for name, (sx, sy, sz) in parts.items():
        fits_flat = (sx <= bx and sy <= by) or (sx <= by and sy <= bx)
        if not fits_flat or sz > bz:
            raise ParameterError(
                f"the {name} ({sx:.1f} x {sy:.1f} x {sz:.1f} mm) does not fit the printer's build volume "
                f"({bx:.0f} x {by:.0f} x {bz:.0f} mm) for board {layout.board.name!r}"
            )
    if layout.kind == "camera":
        _check_aperture(layout)
    if layout.kind == "vibration":
        pocket = p.magnet_height + tol
        if p.base_thickness - pocket < w:
            raise ParameterError(
                f"base thickness {p.base_thickness} mm leaves less than the wall ({w} mm) above a "
                f"{p.magnet_height} mm magnet pocket"
            )
        sensor = layout.items[0]
        stud_top = pocket + p.stud_depth
        if sensor.pcb.z0 - stud_top < w:
            raise ParameterError(
                f"the M6 stud hole ({p.stud_depth} mm deep above a {pocket:.1f} mm magnet pocket) "
                f"leaves less than the wall ({w} mm) under the sensor: "
                "raise base_thickness or pedestal_height"
            )
        cx, cy = (sensor.pcb.x0 + sensor.pcb.x1) / 2, (sensor.pcb.y0 + sensor.pcb.y1) / 2
        radius = p.stud_tap_drill / 2
        for part in sensor.placed[1:]:
            if part.box.z0 >= sensor.pcb.z0:
                continue
            relief = part.box.grow(p.clearance)
            across = max(
                math.hypot(max(relief.x0 - cx, 0.0, cx - relief.x1), max(relief.y0 - cy, 0.0, cy - relief.y1))
                - radius,
                0.0,
            )
            up = max(relief.z0 - stud_top, 0.0)
            if math.hypot(across, up) < w:
                raise ParameterError(
                    f"the M6 stud hole comes within {math.hypot(across, up):.1f} mm of the relief under "
                    f"{part.name!r} (less than the wall, {w} mm): lower stud_depth or raise pedestal_height"
                )
        env = sensor.pcb
        cx, cy = (env.x0 + env.x1) / 2, (env.y0 + env.y1) / 2
        room = min(cx, cy, layout.outer.x1 - cx, layout.outer.y1 - cy) - w
        if p.magnet_diameter / 2 + tol > room:
            raise ParameterError(
                f"a {p.magnet_diameter} mm magnet pocket does not fit under the sensor "
                f"(room for {2 * room:.1f} mm)"
            )


def _check_aperture(layout: Layout) -> None:
    """The lens bore must leave a wall to the lip, the bosses and any hold-down pin."""
    from edgefleet.enclosure.supports import post_footprints

    p = layout.params
    w, c = p.wall, layout.cavity
    for item in layout.items:
        lens = item.lens
        if lens is None or lens.diameter is None:
            continue
        bore = layout.aperture_radius(lens.diameter, lens.box.z1)
        cx, cy = (lens.box.x0 + lens.box.x1) / 2, (lens.box.y0 + lens.box.y1) / 2
        inset = p.tolerance + w  # the lip's inner face
        room = min(cx - c.x0, c.x1 - cx, cy - c.y0, c.y1 - cy) - inset
        blockers = [
            math.hypot(cx - bx, cy - by) - layout.boss_radius - p.tolerance for bx, by in layout.boss_centers
        ]
        if item.support == "posts":
            blockers += [
                math.hypot(max(f.x0 - cx, 0.0, cx - f.x1), max(f.y0 - cy, 0.0, cy - f.y1))
                for f, _, high in post_footprints(layout, item)
                if high < layout.top - 0.1
            ]
        if bore + w > min([room, *blockers]):
            raise ParameterError(
                f"a {p.field_of_view:g} degree field of view needs a {2 * bore:.1f} mm lens bore, "
                "too wide for "
                f"{item.profile.name!r} in this housing: narrow the field of view or thin the wall"
            )
