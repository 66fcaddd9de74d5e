"""STL/3MF files, the print-time model, the preview and the command line."""

import io
import json
import math
from pathlib import Path

import manifold3d as m3d
import pytest
import trimesh
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.enclosure import Printer, part_stats, write_outputs
from edgefleet.enclosure.export import mesh_bytes
from edgefleet.enclosure.render import render_png
from tests.enclosure.helpers import housing


@pytest.mark.parametrize("fmt", ["stl", "3mf"])
def test_files_round_trip_as_watertight_meshes(fmt: str) -> None:
    enclosure = housing("camera", "xiao-esp32s3-sense")
    loaded = trimesh.load(io.BytesIO(mesh_bytes(enclosure.base, fmt)), file_type=fmt)  # type: ignore[arg-type]
    mesh = loaded.to_geometry() if isinstance(loaded, trimesh.Scene) else loaded
    assert isinstance(mesh, trimesh.Trimesh)
    if fmt == "stl":
        mesh.merge_vertices()
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(enclosure.base.volume(), rel=1e-4)


def test_lid_is_turned_over_for_printing() -> None:
    enclosure = housing("camera", "esp32-s3-eye")
    printed = enclosure.lid_for_print()
    low = printed.bounding_box()[2]
    assert low == pytest.approx(0.0, abs=1e-9)
    assert printed.volume() == pytest.approx(enclosure.lid.volume(), rel=1e-9)
    # the flat top of the lid is on the bed: the slice just above z = 0 covers the whole outline
    outer = enclosure.layout.outer
    assert printed.slice(0.05).area() > 0.95 * outer.size[0] * outer.size[1]


def test_print_time_model() -> None:
    cube = m3d.Manifold.cube((10.0, 10.0, 10.0))
    printer = Printer(flow_rate=4.0, layer_height=0.2, layer_overhead=2.0, start_overhead=100.0, density=1.25)
    stats = part_stats("cube", cube, printer)
    assert stats.volume_cm3 == pytest.approx(1.0)
    assert stats.mass_g == pytest.approx(1.25)
    assert stats.layers == 50
    assert stats.print_time_s == pytest.approx(100.0 + 1000.0 / 4.0 + 50 * 2.0)
    assert stats.size_mm == pytest.approx((10.0, 10.0, 10.0))
    assert stats.print_time_text == "0 h 08 min"


def test_preview_is_a_small_png() -> None:
    png = render_png(housing("vibration", "xiao-esp32s3-sense"), title="test")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 150_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (720, 480)


def test_write_outputs(tmp_path: Path) -> None:
    enclosure = housing("vibration", "esp32-s3-eye")
    outputs = write_outputs(enclosure, tmp_path, preview=False)
    names = sorted(p.name for p in outputs.files)
    stem = "enclosure-vibration-esp32-s3-eye"
    assert names == sorted(
        [f"{stem}-base.stl", f"{stem}-base.3mf", f"{stem}-lid.stl", f"{stem}-lid.3mf", f"{stem}.json"]
    )
    summary = json.loads((tmp_path / f"{stem}.json").read_text())
    assert summary["sensor"] == "gy-521"
    assert [p["name"] for p in summary["parts"]] == ["base", "lid"]
    base = summary["parts"][0]
    assert base["volume_cm3"] == pytest.approx(enclosure.base.volume() / 1000)
    assert math.isclose(base["mass_g"], base["volume_cm3"] * 1.24)


runner = CliRunner()


def test_cli_generates_files_and_prints_figures(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "enclosure",
            "--kind",
            "camera",
            "--board",
            "xiao-esp32s3-sense",
            "--out",
            str(tmp_path),
            "--no-preview",
        ],
    )
    assert result.exit_code == 0, result.output
    for word in ("volume", "mass", "bounding box", "print time", "base", "lid"):
        assert word in result.output
    assert len(list(tmp_path.glob("*.stl"))) == 2
    assert len(list(tmp_path.glob("*.3mf"))) == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--kind", "camera", "--board", "esp32-c6-devkit"], 1, "unknown board"),
        (["--kind", "vibration", "--board", "esp32-s3-eye", "--wall", "0.2"], 1, "thinner than the nozzle"),
        (
            ["--kind", "camera", "--board", "esp32-s3-eye", "--build-volume", "60", "60", "60"],
            1,
            "build volume",
        ),
        (["--kind", "camera", "--board", "esp32-s3-eye", "--walls", "3"], 2, "unexpected arguments"),
        (["--kind", "camera"], 2, "--board are required"),
    ],
)
def test_cli_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["enclosure", *args, "--out", str(tmp_path)])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_profiles() -> None:
    result = runner.invoke(app, ["enclosure", "--list"])
    assert result.exit_code == 0
    for name in ("esp32-s3-devkitc-1", "xiao-esp32s3-sense", "esp32-s3-eye", "gy-521"):
        assert name in result.output
