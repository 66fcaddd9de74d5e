"""The checks fail on broken geometry: each defect the issue names is caught."""

import dataclasses

import manifold3d as m3d
import pytest

from edgefleet.enclosure import GeometryError, solids
from edgefleet.enclosure.checks import (
    check_board_fit,
    check_holes,
    check_lid_closes,
    check_solid,
    min_wall_thickness,
)
from edgefleet.enclosure.placement import Mounted
from tests.enclosure.helpers import housing


def _moved(item: Mounted, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Mounted:
    x, y, z = item.origin
    return dataclasses.replace(item, origin=(x + dx, y + dy, z + dz))


def test_thickness_scan_finds_a_thin_slab() -> None:
    slab = m3d.Manifold.cube((30.0, 20.0, 0.7))
    thickness, where = min_wall_thickness(slab)
    assert thickness == pytest.approx(0.7, abs=1e-3)
    hollow = m3d.Manifold.cube((20.0, 20.0, 20.0)) - m3d.Manifold.cube((18.8, 17.0, 30.0)).translate(
        (0.6, 1.5, 1.0)
    )
    thickness, where = min_wall_thickness(hollow)
    assert thickness == pytest.approx(0.6, abs=1e-3)
    assert where[0] < 0.61 or where[0] > 19.39  # on one of the 0.6 mm walls


def test_two_loose_pieces_are_not_a_sound_solid() -> None:
    pieces = m3d.Manifold.cube((5.0, 5.0, 5.0)) + m3d.Manifold.cube((5.0, 5.0, 5.0)).translate(
        (10.0, 0.0, 0.0)
    )
    result = check_solid(pieces, "part")
    assert not result.ok
    assert "2 separate pieces" in result.detail


def test_board_pushed_into_the_wall_is_caught() -> None:
    enclosure = housing("camera", "esp32-s3-eye")
    layout = enclosure.layout
    board = layout.items[-1]
    into_wall = dataclasses.replace(layout, items=[_moved(board, dy=-(layout.cavity.y0 + 4.0))])
    results = check_board_fit(dataclasses.replace(enclosure, layout=into_wall))
    assert not results[0].ok  # intersects
    assert "overlap" in results[0].detail


def test_board_closer_than_the_clearance_is_caught() -> None:
    enclosure = housing("camera", "esp32-s3-eye")
    pcb = enclosure.layout.items[-1].pcb
    # a rib standing 0.2 mm off the PCB's -y edge: no overlap, but less than the 0.5 mm clearance
    rib = m3d.Manifold.cube((5.0, 1.0, 3.0)).translate((pcb.x0 + 20.0, pcb.y0 - 1.2, pcb.z0))
    crowded = dataclasses.replace(enclosure, base=enclosure.base + rib, base_shell=enclosure.base_shell + rib)
    intersects, clearance = check_board_fit(crowded)
    assert intersects.ok
    assert not clearance.ok
    assert "0.200" in clearance.detail


def test_lid_pushed_into_the_base_is_caught() -> None:
    enclosure = housing("vibration", "xiao-esp32s3-sense")
    sunk = dataclasses.replace(enclosure, lid=enclosure.lid.translate((0.0, 0.0, -0.3)))
    results = {r.name: r for r in check_lid_closes(sunk)}
    assert not results["lid and base do not intersect"].ok


def test_lid_that_does_not_seat_is_caught() -> None:
    enclosure = housing("vibration", "xiao-esp32s3-sense")
    floating = dataclasses.replace(enclosure, lid=enclosure.lid.translate((0.0, 0.0, 0.4)))
    results = {r.name: r for r in check_lid_closes(floating)}
    assert results["lid and base do not intersect"].ok
    assert not results["lid seats on the base"].ok


@pytest.mark.parametrize(("offset", "ok"), [(0.05, True), (0.15, False)])
def test_hole_alignment_tolerance_is_0_1_mm(offset: float, ok: bool) -> None:
    enclosure = housing("vibration", "esp32-s3-devkitc-1")
    layout = enclosure.layout
    sensor, board = layout.items
    # pretend the profile's holes were `offset` mm elsewhere: the printed pilots no longer match
    moved = dataclasses.replace(layout, items=[_moved(sensor, dx=offset), board])
    results = {r.name: r for r in check_holes(dataclasses.replace(enclosure, layout=moved))}
    assert results["pilot holes line up with gy-521's mounting holes"].ok is ok


def test_lid_holes_that_miss_the_bosses_are_caught() -> None:
    enclosure = housing("camera", "xiao-esp32s3-sense")
    shifted = dataclasses.replace(enclosure, lid=enclosure.lid.translate((0.2, 0.0, 0.0)))
    results = {r.name: r for r in check_holes(shifted)}
    assert not results["lid screw holes line up with the base's bosses"].ok


def test_build_refuses_an_invalid_solid() -> None:
    with pytest.raises(GeometryError, match="empty"):
        solids._check_valid(m3d.Manifold(), "base")
