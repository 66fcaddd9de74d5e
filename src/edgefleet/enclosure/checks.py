"""Geometric checks of a built housing: sound solids, wall thickness, fit, closure, hole alignment.

Each check returns a `CheckResult`; `run_checks` runs them all. They measure the meshes and solids
themselves (ray casts, Boolean intersections, distance queries, slices), not the layout's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import manifold3d as m3d
import numpy as np

from edgefleet.enclosure.export import to_trimesh
from edgefleet.enclosure.params import SCREWS
from edgefleet.enclosure.solids import Enclosure

__all__ = [
    "CheckResult",
    "check_board_fit",
    "check_holes",
    "check_lid_closes",
    "check_solid",
    "check_walls",
    "find_round_holes",
    "min_wall_thickness",
    "run_checks",
]

VOLUME_EPS = 1e-3
"""mm³ of overlap tolerated between parts that only touch (numerical noise of the Booleans)."""
HOLE_TOLERANCE = 0.1
"""How far (mm) a printed hole may sit from the profile's hole."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def check_solid(solid: m3d.Manifold, name: str) -> CheckResult:
    """Watertight, consistently wound, manifold, one piece, positive volume."""
    mesh = to_trimesh(solid)
    problems = []
    if solid.status() != m3d.Error.NoError:
        problems.append(f"manifold status {solid.status()}")
    if not mesh.is_watertight:
        problems.append("not watertight")
    if not mesh.is_winding_consistent:
        problems.append("inconsistent winding")
    if not mesh.volume > 0:
        problems.append(f"volume {mesh.volume:.3f} mm³")
    pieces = len(solid.decompose())
    if pieces != 1:
        problems.append(f"{pieces} separate pieces")
    detail = "; ".join(problems) or f"watertight, one piece, {mesh.volume / 1000:.2f} cm³"
    return CheckResult(f"{name} is a sound solid", not problems, detail)


def min_wall_thickness(solid: m3d.Manifold) -> tuple[float, tuple[float, float, float]]:
    """Smallest material thickness found by casting a ray inward from every face's centroid.

    Returns the thickness and where it was measured. A ray from a face goes against the face
    normal into the material; the distance to where it leaves the solid is the local thickness.
    """
    mesh = solid.to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
    tris = vertices[np.asarray(mesh.tri_verts)]
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    areas = np.linalg.norm(normals, axis=1)
    keep = areas > 1e-9
    normals = normals[keep] / areas[keep][:, None]
    centroids = tris[keep].mean(axis=1)
    reach = float(np.max(np.ptp(vertices, axis=0))) * 2 + 1.0
    start = 1e-4
    best = (float("inf"), (0.0, 0.0, 0.0))
    for centre, normal in zip(centroids, normals, strict=True):
        origin = centre - normal * start
        hits = solid.ray_cast(tuple(origin), tuple(origin - normal * reach))
        if not hits:
            continue
        exit_point = np.asarray(hits[0].position)
        thickness = float(np.linalg.norm(exit_point - origin)) + start
        if thickness < best[0]:
            best = (thickness, (float(centre[0]), float(centre[1]), float(centre[2])))
    return best


def check_walls(solid: m3d.Manifold, name: str, minimum: float) -> CheckResult:
    thickness, where = min_wall_thickness(solid)
    ok = thickness >= minimum - 1e-3
    at = ", ".join(f"{v:.1f}" for v in where)
    return CheckResult(f"{name} walls >= {minimum:g} mm", ok, f"thinnest {thickness:.3f} mm at ({at})")


def check_board_fit(enclosure: Enclosure) -> list[CheckResult]:
    """No board or part overlaps either housing part; everything but the supports keeps the clearance."""
    clearance = enclosure.layout.params.clearance
    results = []
    for item in enclosure.layout.items:
        solid = item.solid()
        name = item.profile.name
        overlap = (enclosure.base ^ solid).volume() + (enclosure.lid ^ solid).volume()
        results.append(
            CheckResult(
                f"{name} does not intersect the housing", overlap <= VOLUME_EPS, f"overlap {overlap:.4f} mm³"
            )
        )
        gap = min(
            enclosure.base_shell.min_gap(solid, clearance * 2),
            enclosure.lid_shell.min_gap(solid, clearance * 2),
        )
        results.append(
            CheckResult(
                f"{name} has {clearance:g} mm clearance (supports aside)",
                gap >= clearance - 1e-3,
                f"closest approach {gap:.3f} mm",
            )
        )
    return results


def check_lid_closes(enclosure: Enclosure) -> list[CheckResult]:
    """Assembled, lid and base do not overlap, and the lid rests on the base (no gap)."""
    overlap = (enclosure.base ^ enclosure.lid).volume()
    gap = enclosure.base.min_gap(enclosure.lid, 1.0)
    return [
        CheckResult("lid and base do not intersect", overlap <= VOLUME_EPS, f"overlap {overlap:.4f} mm³"),
        CheckResult("lid seats on the base", gap <= 1e-3, f"gap {gap:.3f} mm"),
    ]


def find_round_holes(
    section: m3d.CrossSection, radius: float, slack: float = 0.25
) -> list[tuple[float, float]]:
    """Centres of the holes in a slice whose area matches a circle of `radius` within `slack`."""
    found = []
    for polygon in section.to_polygons():
        pts = np.asarray(polygon, dtype=np.float64)
        x, y = pts[:, 0], pts[:, 1]
        xn, yn = np.roll(x, -1), np.roll(y, -1)
        cross = x * yn - xn * y
        area = cross.sum() / 2
        if area >= 0:  # outer boundaries wind counter-clockwise; holes clockwise
            continue
        equivalent = float(np.sqrt(-area / np.pi))
        if abs(equivalent - radius) > slack * radius:
            continue
        cx = float(((x + xn) * cross).sum() / (6 * area))
        cy = float(((y + yn) * cross).sum() / (6 * area))
        found.append((cx, cy))
    return found


def _match(expected: list[tuple[float, float]], found: list[tuple[float, float]]) -> float:
    """Largest distance from an expected hole to its nearest found one (inf if counts differ)."""
    if len(expected) != len(found):
        return float("inf")
    if not expected:
        return 0.0
    return max(min(float(np.hypot(ex - fx, ey - fy)) for fx, fy in found) for ex, ey in expected)


def check_holes(enclosure: Enclosure) -> list[CheckResult]:
    """Pilot holes sit under the boards' mounting holes, and the lid's screw holes over the bosses."""
    layout = enclosure.layout
    p = layout.params
    results = []
    for item in layout.items:
        if not item.holes:
            continue
        pcb = item.pcb
        screw = SCREWS[p.sensor_screw if item.support == "pedestal" else p.screw]
        section = enclosure.base.slice(pcb.z0 - 0.5)
        found = [
            (x, y)
            for x, y in find_round_holes(section, screw.pilot / 2)
            if pcb.x0 <= x <= pcb.x1 and pcb.y0 <= y <= pcb.y1
        ]
        expected = [(x, y) for x, y, _ in item.holes]
        error = _match(expected, found)
        results.append(
            CheckResult(
                f"pilot holes line up with {item.profile.name}'s mounting holes",
                error <= HOLE_TOLERANCE,
                f"{len(found)} of {len(expected)} found, worst offset {error:.3f} mm",
            )
        )
    if p.fastening == "screws":
        screw = SCREWS[p.screw]
        in_lid = find_round_holes(enclosure.lid.slice(layout.top + p.wall / 2), screw.clearance / 2)
        in_base = find_round_holes(enclosure.base.slice(layout.top - 0.5), screw.pilot / 2)
        error = _match(in_base, in_lid)
        results.append(
            CheckResult(
                "lid screw holes line up with the base's bosses",
                error <= HOLE_TOLERANCE and len(in_base) == 4,
                f"{len(in_lid)} lid holes, {len(in_base)} boss pilots, worst offset {error:.3f} mm",
            )
        )
    return results


def run_checks(enclosure: Enclosure, walls: bool = True) -> list[CheckResult]:
    """Every check; `walls=False` skips the ray-cast wall-thickness scan (the slowest one)."""
    wall = enclosure.layout.params.wall
    results = [check_solid(enclosure.base, "base"), check_solid(enclosure.lid, "lid")]
    if walls:
        results += [check_walls(enclosure.base, "base", wall), check_walls(enclosure.lid, "lid", wall)]
    results += check_board_fit(enclosure)
    results += check_lid_closes(enclosure)
    results += check_holes(enclosure)
    return results
