"""Both kinds, every board, both fastenings: the geometric checks the issue asks for."""

import math

import pytest

from edgefleet.enclosure import run_checks
from edgefleet.enclosure.checks import (
    check_board_fit,
    check_holes,
    check_lid_closes,
    check_solid,
    check_walls,
    min_wall_thickness,
)
from tests.enclosure.helpers import BOARDS, KINDS, housing

COMBOS = [(k, b, f) for k in KINDS for b in BOARDS for f in ("screws", "snap")]


@pytest.mark.parametrize(("kind", "board", "fastening"), COMBOS)
def test_parts_are_sound_solids(kind: str, board: str, fastening: str) -> None:
    enclosure = housing(kind, board, fastening)
    for solid, name in ((enclosure.base, "base"), (enclosure.lid, "lid")):
        result = check_solid(solid, name)
        assert result.ok, result.detail
        assert solid.volume() > 1000.0  # cm³-scale parts, not slivers


@pytest.mark.parametrize(("kind", "board", "fastening"), COMBOS)
def test_walls_never_thinner_than_configured(kind: str, board: str, fastening: str) -> None:
    enclosure = housing(kind, board, fastening)
    wall = enclosure.layout.params.wall
    for solid, name in ((enclosure.base, "base"), (enclosure.lid, "lid")):
        result = check_walls(solid, name, wall)
        assert result.ok, result.detail


@pytest.mark.parametrize(("kind", "board", "fastening"), COMBOS)
def test_boards_fit_with_clearance(kind: str, board: str, fastening: str) -> None:
    for result in check_board_fit(housing(kind, board, fastening)):
        assert result.ok, f"{result.name}: {result.detail}"


@pytest.mark.parametrize(("kind", "board", "fastening"), COMBOS)
def test_lid_closes_without_interference(kind: str, board: str, fastening: str) -> None:
    for result in check_lid_closes(housing(kind, board, fastening)):
        assert result.ok, f"{result.name}: {result.detail}"


@pytest.mark.parametrize(("kind", "board"), [(k, b) for k in KINDS for b in BOARDS])
def test_holes_line_up(kind: str, board: str) -> None:
    enclosure = housing(kind, board)
    results = check_holes(enclosure)
    names = [r.name for r in results]
    assert "lid screw holes line up with the base's bosses" in names
    if kind == "vibration":
        assert "pilot holes line up with gy-521's mounting holes" in names
    for result in results:
        assert result.ok, f"{result.name}: {result.detail}"


def test_the_thickness_scan_measures_the_real_wall() -> None:
    enclosure = housing("camera", "esp32-s3-eye")
    thickness, _ = min_wall_thickness(enclosure.base)
    assert thickness == pytest.approx(enclosure.layout.params.wall, abs=0.01)
    # asking for more than was built must fail
    assert not check_walls(enclosure.base, "base", enclosure.layout.params.wall + 0.3).ok


def test_vibration_base_has_stud_hole_and_magnet_pocket() -> None:
    enclosure = housing("vibration", "xiao-esp32s3-sense")
    p = enclosure.layout.params
    sensor = enclosure.layout.items[0].pcb
    cx, cy = (sensor.x0 + sensor.x1) / 2, (sensor.y0 + sensor.y1) / 2
    from edgefleet.enclosure.checks import find_round_holes

    pocket = find_round_holes(enclosure.base.slice(1.0), p.magnet_diameter / 2 + p.tolerance, slack=0.05)
    stud = find_round_holes(enclosure.base.slice(p.magnet_height + 2.0), p.stud_tap_drill / 2, slack=0.05)
    for found in (pocket, stud):
        assert len(found) == 1
        assert math.hypot(found[0][0] - cx, found[0][1] - cy) < 0.05
    # the pocket is a blind recess: nothing passes through to the cavity except the stud's own depth
    assert not find_round_holes(
        enclosure.base.slice(p.magnet_height + p.tolerance + p.stud_depth + 0.5), p.stud_tap_drill / 2
    )


def test_camera_lid_has_a_lens_aperture_over_the_lens() -> None:
    from edgefleet.enclosure.checks import find_round_holes

    enclosure = housing("camera", "xiao-esp32s3-sense")
    layout = enclosure.layout
    lens = layout.items[0].lens
    assert lens is not None
    radius = layout.aperture_radius(6.0, lens.box.z1)
    holes = find_round_holes(enclosure.lid.slice(layout.top + 1.0), radius, slack=0.05)
    cx, cy = (lens.box.x0 + lens.box.x1) / 2, (lens.box.y0 + lens.box.y1) / 2
    assert len(holes) == 1
    assert math.hypot(holes[0][0] - cx, holes[0][1] - cy) < 0.05
    # the lens looks through the lid: it sits just under it
    assert layout.top - lens.box.z1 == pytest.approx(layout.params.clearance, abs=0.01)


def test_camera_base_has_a_cable_gland_hole() -> None:
    enclosure = housing("camera", "esp32-s3-devkitc-1")
    layout = enclosure.layout
    assert layout.gland is not None
    y, z = layout.gland
    hole = layout.params.gland_hole / 2
    # a ray along x through the gland's centre passes the -x wall without hitting anything
    hits = enclosure.base.ray_cast((-1.0, y, z), (layout.cavity.x0 + 0.5, y, z))
    assert hits == []
    hits = enclosure.base.ray_cast((-1.0, y, z + hole + 0.3), (layout.cavity.x0 + 0.5, y, z + hole + 0.3))
    assert len(hits) >= 1


def test_usb_c_opening_faces_the_receptacle() -> None:
    enclosure = housing("vibration", "esp32-s3-devkitc-1")
    layout = enclosure.layout
    for port in layout.items[-1].usb_ports:
        b = port.box
        y, z = (b.y0 + b.y1) / 2, (b.z0 + b.z1) / 2
        # from outside straight at the receptacle: only the board itself is in the way
        assert enclosure.base.ray_cast((layout.outer.x1 + 5.0, y, z), (b.x1, y, z)) == []


def test_run_checks_all_pass_for_thin_walls_on_a_fine_nozzle() -> None:
    from edgefleet.enclosure import generate, parse_params

    params = parse_params(wall=1.2, printer={"nozzle": 0.25, "layer_height": 0.12})
    enclosure = generate("camera", "xiao-esp32s3-sense", None, params)
    failed = [r for r in run_checks(enclosure) if not r.ok]
    assert failed == []
