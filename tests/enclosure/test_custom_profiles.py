"""User profile files: a board with mounting holes gets standoffs that line up; bad files name the line."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.enclosure import ProfileError, generate, get_board, read_profile_file, run_checks
from edgefleet.enclosure.checks import find_round_holes
from edgefleet.enclosure.params import SCREWS

BOARD_WITH_HOLES = """\
boards:
  test-carrier:
    title: carrier board with four M3 holes
    role: board
    pcb: {length: 50.0, width: 30.0, thickness: 1.6, source: test drawing, approximate: false}
    holes:
      - {x: 3.5, y: 3.5, diameter: 3.2, source: test drawing}
      - {x: 46.5, y: 3.5, diameter: 3.2, source: test drawing}
      - {x: 3.5, y: 26.5, diameter: 3.2, source: test drawing}
      - {x: 46.5, y: 26.5, diameter: 3.2, source: test drawing}
    components:
      - {name: module, x: [10.0, 35.0], y: [6.0, 24.0], z: [1.6, 4.8], source: test}
      - {name: usb, kind: usb_c, x: [43.0, 50.8], y: [10.5, 19.5], z: [1.6, 4.9], source: test}
      - {name: pins, x: [8.0, 42.0], y: [0.5, 3.0], z: [-2.0, 0.0], source: test}
"""


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "boards.yaml"
    path.write_text(BOARD_WITH_HOLES)
    return path


@pytest.mark.parametrize("kind", ["vibration", "camera"])
def test_board_with_holes_gets_aligned_standoffs(profile_file: Path, kind: str) -> None:
    board = get_board("test-carrier", read_profile_file(profile_file))
    enclosure = generate(kind, board)  # type: ignore[arg-type]
    assert enclosure.layout.items[-1].support == "standoffs"
    failed = [r for r in run_checks(enclosure) if not r.ok]
    assert failed == []
    names = [r.name for r in run_checks(enclosure, walls=False)]
    assert "pilot holes line up with test-carrier's mounting holes" in names
    # four pilots, one under each hole, straight from the slice
    pcb = enclosure.layout.items[-1].pcb
    pilots = find_round_holes(enclosure.base.slice(pcb.z0 - 1.0), SCREWS["M3"].pilot / 2)
    inside = [(x, y) for x, y in pilots if pcb.x0 <= x <= pcb.x1 and pcb.y0 <= y <= pcb.y1]
    assert len(inside) == 4


def test_custom_board_from_the_command_line(profile_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["enclosure", "--kind", "camera", "--board", "test-carrier", "--profiles", str(profile_file)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--no-preview"])
    assert result.exit_code == 0, result.output
    assert (out / "enclosure-camera-test-carrier-base.stl").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("boards:\n  x: [1, 2\n", r"boards\.yaml:3: invalid YAML"),
        (
            BOARD_WITH_HOLES.replace("length: 50.0", "length: -5"),
            r"boards\.yaml:5: boards\.test-carrier\.pcb\.length",
        ),
        (
            BOARD_WITH_HOLES.replace("x: 46.5, y: 26.5", "x: 49.5, y: 26.5"),
            r"boards\.yaml:3: boards\.test-carrier: .*hole at \(49\.5, 26\.5\) is outside the PCB",
        ),
        (BOARD_WITH_HOLES.replace("role: board", "role: imu"), "an IMU profile needs axes"),
        (BOARD_WITH_HOLES.replace("boards:", "sensors:"), "sensors.test-carrier has role 'board'"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_profile_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        read_profile_file(path)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profiles"):
        read_profile_file(tmp_path / "nope.yaml")
