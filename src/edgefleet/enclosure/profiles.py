"""Board and sensor profiles: outlines, holes, components and where each figure comes from.

Profiles live in `profiles.yaml` next to this module. Frame of a profile: x along the board's long
edge from its -x edge, y across it, z up from the PCB's bottom face (the PCB spans z = 0..thickness,
parts on the back have negative z). By convention a board's USB receptacle (USB-C or Micro-USB)
is on its +x edge.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.enclosure.errors import ProfileError, UnknownProfileError

__all__ = [
    "USB_KINDS",
    "Axes",
    "Feature",
    "Hole",
    "Outline",
    "Profile",
    "board_names",
    "get_board",
    "get_sensor",
    "load_profiles",
    "parse_profiles",
    "read_profile_file",
    "sensor_names",
]

logger = logging.getLogger(__name__)

Range = tuple[float, float]
USB_KINDS = ("usb_c", "micro_usb")
"""Feature kinds that get an opening in the wall in front of them."""
Direction = Literal["+x", "-x", "+y", "-y"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outline(_Model):
    length: float = Field(gt=0)
    width: float = Field(gt=0)
    thickness: float = Field(gt=0)
    source: str
    approximate: bool = True


class Hole(_Model):
    x: float
    y: float
    diameter: float = Field(gt=0)
    source: str
    approximate: bool = True


class Feature(_Model):
    """A box that a part occupies (component, connector, lens barrel) in the profile frame."""

    name: str
    kind: Literal["part", "usb_c", "micro_usb", "lens"] = "part"
    x: Range
    y: Range
    z: Range
    diameter: float | None = Field(default=None, gt=0)
    source: str
    approximate: bool = True

    @model_validator(mode="after")
    def _check(self) -> Feature:
        for axis, (low, high) in (("x", self.x), ("y", self.y), ("z", self.z)):
            if not low < high:
                raise ValueError(f"feature {self.name!r}: {axis} range {low}..{high} is empty")
        if self.kind == "lens" and self.diameter is None:
            raise ValueError(f"lens {self.name!r} needs a diameter")
        return self

    @property
    def center(self) -> tuple[float, float, float]:
        return ((self.x[0] + self.x[1]) / 2, (self.y[0] + self.y[1]) / 2, (self.z[0] + self.z[1]) / 2)


class Axes(_Model):
    """Where the sensor's own axes point in the profile frame (x and y; z follows right-handed)."""

    x: Direction
    y: Direction
    source: str


class Profile(_Model):
    name: str
    title: str
    role: Literal["board", "imu", "camera"]
    pcb: Outline
    holes: list[Hole] = []
    holes_note: str = ""
    components: list[Feature] = []
    axes: Axes | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        for hole in self.holes:
            radius = hole.diameter / 2
            if not (
                radius <= hole.x <= self.pcb.length - radius and radius <= hole.y <= self.pcb.width - radius
            ):
                raise ValueError(f"{self.name}: hole at ({hole.x}, {hole.y}) is outside the PCB")
        for feature in self.components:
            if feature.kind in USB_KINDS and feature.x[1] < self.pcb.length - 1.5:
                raise ValueError(f"{self.name}: USB port {feature.name!r} must sit on the +x edge")
        if self.role == "imu" and self.axes is None:
            raise ValueError(f"{self.name}: an IMU profile needs axes")
        if self.role == "camera" and self.lens is None:
            raise ValueError(f"{self.name}: a camera profile needs a lens")
        return self

    @property
    def lens(self) -> Feature | None:
        return next((f for f in self.components if f.kind == "lens"), None)

    @property
    def usb_ports(self) -> list[Feature]:
        return [f for f in self.components if f.kind in USB_KINDS]


class _ProfileFile(_Model):
    boards: dict[str, Profile] = {}
    sensors: dict[str, Profile] = {}


Profiles = tuple[dict[str, Profile], dict[str, Profile]]


def _with_names(section: object) -> object:
    if isinstance(section, dict):
        return {
            key: ({"name": key, **value} if isinstance(value, dict) else value)
            for key, value in section.items()
        }
    return section


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node along a validation error's location."""
    node = root
    if node is None:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return int(node.start_mark.line) + 1


def parse_profiles(text: str, origin: str) -> Profiles:
    """Validate profile YAML (`boards:` and/or `sensors:` mappings); errors name `origin` and the line."""
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise ProfileError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(raw, dict):
        raise ProfileError(f"{origin}: expected a mapping with 'boards' and/or 'sensors'")
    raw = {key: _with_names(value) for key, value in raw.items()}
    try:
        parsed = _ProfileFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        line = _line_of(root, tuple(first["loc"]))
        where = f"{origin}:{line}" if line else origin
        path = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ProfileError(f"{where}: {path}: {message}{more}") from err
    for name, profile in parsed.boards.items():
        if profile.role != "board":
            raise ProfileError(f"{origin}: boards.{name} has role {profile.role!r}; boards have role 'board'")
    for name, profile in parsed.sensors.items():
        if profile.role == "board":
            raise ProfileError(f"{origin}: sensors.{name} has role 'board'")
    return parsed.boards, parsed.sensors


@cache
def load_profiles() -> Profiles:
    """The bundled profiles: (boards, sensors)."""
    text = resources.files("edgefleet.enclosure").joinpath("profiles.yaml").read_text(encoding="utf-8")
    boards, sensors = parse_profiles(text, "profiles.yaml")
    logger.debug("loaded %d board and %d sensor profiles", len(boards), len(sensors))
    return boards, sensors


def read_profile_file(path: Path) -> Profiles:
    """Extra profiles from a user's YAML file (same layout as the bundled `profiles.yaml`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ProfileError(f"cannot read profiles from {path}: {err.strerror or err}") from err
    return parse_profiles(text, str(path))


def board_names() -> list[str]:
    return sorted(load_profiles()[0])


def sensor_names() -> list[str]:
    return sorted(load_profiles()[1])


def _lookup(table: dict[str, Profile], name: str, what: str) -> Profile:
    key = name.strip().lower()
    if key in table:
        return table[key]
    known = ", ".join(sorted(table))
    raise UnknownProfileError(f"unknown {what} {name!r}; known {what}s: {known}")


def get_board(name: str, extra: Profiles | None = None) -> Profile:
    """A board by name; `extra` profiles (from `read_profile_file`) come first."""
    return _lookup({**load_profiles()[0], **(extra[0] if extra else {})}, name, "board")


def get_sensor(name: str, extra: Profiles | None = None) -> Profile:
    return _lookup({**load_profiles()[1], **(extra[1] if extra else {})}, name, "sensor")
