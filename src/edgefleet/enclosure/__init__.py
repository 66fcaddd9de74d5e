"""Parametric 3D-printable housings for the device kinds.

`generate(kind, board, sensor, params)` plans and builds base and lid (manifold3d solids);
`run_checks` measures them; `write_outputs` writes STL, 3MF, a PNG preview and a summary.
This package imports nothing else of edgefleet.
"""

from edgefleet.enclosure.checks import CheckResult, min_wall_thickness, run_checks
from edgefleet.enclosure.errors import (
    EnclosureError,
    GeometryError,
    ParameterError,
    ProfileError,
    UnknownProfileError,
)
from edgefleet.enclosure.estimate import PartStats, part_stats
from edgefleet.enclosure.layout import Layout, plan
from edgefleet.enclosure.outputs import Outputs, write_outputs
from edgefleet.enclosure.params import EnclosureParams, Kind, Printer, parse_params
from edgefleet.enclosure.profiles import (
    Profile,
    board_names,
    get_board,
    get_sensor,
    read_profile_file,
    sensor_names,
)
from edgefleet.enclosure.solids import Enclosure, build, generate

__all__ = [
    "CheckResult",
    "Enclosure",
    "EnclosureError",
    "EnclosureParams",
    "GeometryError",
    "Kind",
    "Layout",
    "Outputs",
    "ParameterError",
    "PartStats",
    "Printer",
    "Profile",
    "ProfileError",
    "UnknownProfileError",
    "board_names",
    "build",
    "generate",
    "get_board",
    "get_sensor",
    "min_wall_thickness",
    "parse_params",
    "part_stats",
    "plan",
    "read_profile_file",
    "run_checks",
    "sensor_names",
    "write_outputs",
]
