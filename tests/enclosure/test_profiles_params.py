"""Profiles are complete data with sources; bad names and impossible parameters give clear errors."""

import pytest

from edgefleet.enclosure import (
    ParameterError,
    UnknownProfileError,
    board_names,
    generate,
    get_board,
    get_sensor,
    parse_params,
    plan,
    sensor_names,
)
from edgefleet.enclosure.profiles import Profile

ISSUE_BOARDS = {"esp32-s3-devkitc-1", "xiao-esp32s3-sense", "esp32-s3-eye"}


def test_issue_boards_and_sensor_are_profiled() -> None:
    assert set(board_names()) >= ISSUE_BOARDS
    assert "gy-521" in sensor_names()


@pytest.mark.parametrize("name", [*sorted(ISSUE_BOARDS), "gy-521", "ov2640-fpc"])
def test_every_figure_names_its_source(name: str) -> None:
    profile = get_board(name) if name in ISSUE_BOARDS else get_sensor(name)
    assert profile.pcb.source.strip()
    for hole in profile.holes:
        assert hole.source.strip()
    for feature in profile.components:
        assert feature.source.strip(), feature.name
    assert profile.holes or profile.holes_note, "say why a board without holes has none"


def test_known_dimensions() -> None:
    xiao = get_board("xiao-esp32s3-sense")
    assert (xiao.pcb.length, xiao.pcb.width) == (21.0, 17.8)
    gy = get_sensor("GY-521")  # case-insensitive
    assert [h.diameter for h in gy.holes] == [3.0, 3.0]
    assert gy.axes is not None
    devkit = get_board("esp32-s3-devkitc-1")
    assert devkit.pcb.width == 25.4
    assert len(devkit.usb_ports) == 2
    assert get_board("esp32-s3-eye").lens is not None


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(UnknownProfileError, match=r"unknown board 'esp32-c3-mini'.*esp32-s3-devkitc-1"):
        get_board("esp32-c3-mini")
    with pytest.raises(UnknownProfileError, match="unknown sensor 'adxl345'"):
        generate("vibration", "esp32-s3-eye", "adxl345")


def _profile(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "test",
        "title": "test board",
        "role": "board",
        "pcb": {"length": 20.0, "width": 10.0, "thickness": 1.6, "source": "test"},
        "holes": [],
        "components": [],
    }
    data.update(changes)
    return data


def test_profile_validation() -> None:
    Profile.model_validate(_profile())
    with pytest.raises(ValueError, match="outside the PCB"):
        Profile.model_validate(_profile(holes=[{"x": 19.5, "y": 5.0, "diameter": 3.0, "source": "t"}]))
    usb = {"name": "usb", "kind": "usb_c", "x": [0.0, 7.0], "y": [1.0, 9.0], "z": [1.6, 4.8], "source": "t"}
    with pytest.raises(ValueError, match=r"\+x edge"):
        Profile.model_validate(_profile(components=[usb]))
    with pytest.raises(ValueError, match="range"):
        Profile.model_validate(_profile(components=[{**usb, "kind": "part", "x": [3.0, 1.0]}]))
    with pytest.raises(ValueError, match="needs axes"):
        Profile.model_validate(_profile(role="imu"))
    with pytest.raises(ValueError, match="extra"):
        Profile.model_validate(_profile(colour="blue"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"wall": 0.3}, "thinner than the nozzle"),
        ({"wall": 0.6}, "two extrusion widths"),
        ({"wall": 1.0, "printer": {"nozzle": 0.6}}, "two extrusion widths"),
        ({"clearance": -0.1}, "clearance"),
        ({"printer": {"layer_height": 0.4}}, "layer height"),
        ({"lip_depth": 1.5}, "lip depth"),
        ({"walls": 2.0}, "walls: Extra inputs are not permitted"),
        ({"fastening": "glue"}, "fastening"),
    ],
)
def test_impossible_parameters_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_params(values)


def test_board_larger_than_the_printer_is_refused() -> None:
    params = parse_params(printer={"build_volume": (80.0, 80.0, 100.0)})
    plan("camera", "xiao-esp32s3-sense", None, params)  # small enough
    with pytest.raises(ParameterError, match=r"does not fit the printer's build volume \(80 x 80 x 100 mm\)"):
        plan("vibration", "esp32-s3-devkitc-1", None, params)


def test_tall_parts_need_a_tall_printer() -> None:
    params = parse_params(printer={"build_volume": (220.0, 220.0, 15.0)})
    with pytest.raises(ParameterError, match="base"):
        plan("camera", "esp32-s3-eye", None, params)


def test_sensor_must_suit_the_kind() -> None:
    params = parse_params()
    with pytest.raises(ParameterError, match="needs an IMU"):
        plan("vibration", "esp32-s3-devkitc-1", "ov2640-fpc", params)
    with pytest.raises(ParameterError, match="has its own camera"):
        plan("camera", "xiao-esp32s3-sense", "ov2640-fpc", params)
    with pytest.raises(ParameterError, match="needs a camera"):
        plan("camera", "esp32-s3-devkitc-1", "gy-521", params)


def test_stud_and_magnet_must_fit_in_the_base() -> None:
    with pytest.raises(ParameterError, match="magnet pocket"):
        plan("vibration", "esp32-s3-eye", None, parse_params(base_thickness=4.0))
    with pytest.raises(ParameterError, match="stud hole"):
        plan("vibration", "esp32-s3-eye", None, parse_params(stud_depth=10.0))
    with pytest.raises(ParameterError, match="does not fit under the sensor"):
        plan("vibration", "esp32-s3-eye", None, parse_params(magnet_diameter=60.0))


def test_parameters_change_the_geometry() -> None:
    thin = plan("camera", "esp32-s3-eye", None, parse_params(wall=1.6))
    thick = plan("camera", "esp32-s3-eye", None, parse_params(wall=3.0))
    assert thick.outer.size[0] > thin.outer.size[0]
    loose = plan("camera", "esp32-s3-eye", None, parse_params(clearance=1.5))
    board_gap = loose.items[0].envelope.y0 - loose.cavity.y0
    assert board_gap >= 1.5
