"""Parameters of a housing, the printer it is made on, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.enclosure.errors import ParameterError

__all__ = ["SCREWS", "EnclosureParams", "Kind", "Printer", "Screw", "parse_params"]

Kind = Literal["vibration", "camera"]


class Screw(BaseModel):
    """A lid screw: self-tapping into a printed pilot hole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pilot: float
    """Pilot hole diameter in the boss (about 0.85 x the thread diameter for plastic)."""
    clearance: float
    """Through hole in the lid."""


SCREWS: dict[str, Screw] = {
    "M2": Screw(name="M2", pilot=1.7, clearance=2.4),
    "M2.5": Screw(name="M2.5", pilot=2.1, clearance=2.9),
    "M3": Screw(name="M3", pilot=2.5, clearance=3.4),
}


class Printer(BaseModel):
    """The FDM printer: build volume and the figures of the print-time model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nozzle: float = Field(default=0.4, gt=0, le=2.0)
    layer_height: float = Field(default=0.2, gt=0, le=1.0)
    build_volume: tuple[float, float, float] = (220.0, 220.0, 250.0)
    """Usable X, Y, Z in mm (Ender-3 / Prusa MK-class default)."""
    flow_rate: float = Field(default=5.0, gt=0, le=100.0)
    """Average volumetric flow in mm³/s over the whole print (perimeters, infill, slow first layer)."""
    layer_overhead: float = Field(default=3.0, ge=0)
    """Seconds per layer for travel, retraction and layer change."""
    start_overhead: float = Field(default=180.0, ge=0)
    """Seconds of heating, homing and bed levelling before the first extrusion."""
    density: float = Field(default=1.24, gt=0, le=20.0)
    """Filament density in g/cm³ (PLA 1.24, PETG 1.27, ASA 1.07)."""


class EnclosureParams(BaseModel):
    """Everything that shapes a housing. Lengths in millimetres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall: float = Field(default=2.0, gt=0, le=10.0)
    """Minimum wall thickness anywhere in either part."""
    clearance: float = Field(default=0.5, ge=0.1, le=5.0)
    """Free space between the board (and every part on it) and the housing."""
    tolerance: float = Field(default=0.2, ge=0.0, le=1.0)
    """Gap between mating printed parts (lid lip in the base, snap bumps in their grooves)."""
    fastening: Literal["screws", "snap"] = "screws"
    screw: Literal["M2", "M2.5", "M3"] = "M3"
    sensor_screw: Literal["M2", "M2.5", "M3"] = "M2.5"
    """Screws that hold a sensor breakout through its mounting holes."""
    screw_depth: float = Field(default=6.0, gt=0, le=30.0)
    """Depth of the pilot holes for lid and sensor screws."""
    min_standoff: float = Field(default=3.0, ge=0.5, le=30.0)
    """Least free height under a board (more where parts hang under it)."""
    lip_depth: float = Field(default=4.0, ge=1.0, le=20.0)
    """How far the lid's locating lip reaches into the base."""
    vents: bool = True
    vent_width: float = Field(default=1.6, gt=0, le=10.0)
    usb_margin: float = Field(default=2.0, ge=0.0, le=5.0)
    """Extra opening around each USB-C receptacle: 12.9 x 7.3 mm passes common plug overmoulds."""
    # vibration kind
    base_thickness: float = Field(default=8.0, gt=0, le=30.0)
    """Floor of the vibration base: stiff, and deep enough for the stud thread and magnet pocket."""
    pedestal_height: float = Field(default=6.0, gt=0, le=20.0)
    """Solid block the IMU breakout is screwed flat onto."""
    stud_tap_drill: float = Field(default=5.0, gt=0, le=20.0)
    """M6 stud-mount hole: tap drill 5.0 mm (tap M6 after printing) or use a heat-set insert."""
    stud_depth: float = Field(default=6.0, gt=0, le=30.0)
    magnet_diameter: float = Field(default=20.0, gt=0, le=80.0)
    magnet_height: float = Field(default=3.0, gt=0, le=20.0)
    """Pocket for a ring magnet (bore >= 6.5 mm) concentric with the stud hole, under the sensor."""
    # camera kind
    field_of_view: float = Field(default=70.0, ge=0.0, le=120.0)
    """Full cone angle the lens aperture leaves free, in degrees."""
    gland_hole: float = Field(default=12.5, gt=0, le=40.0)
    """Hole for the cable gland (12.5 mm fits M12 x 1.5 and PG7)."""
    gland_space: float = Field(default=8.0, ge=0.0, le=50.0)
    """Room inside the wall for the gland's lock nut."""
    printer: Printer = Printer()

    @model_validator(mode="after")
    def _check(self) -> EnclosureParams:
        nozzle = self.printer.nozzle
        if self.wall < nozzle:
            raise ValueError(
                f"wall {self.wall} mm is thinner than the nozzle ({nozzle} mm): it cannot be printed"
            )
        if self.wall < 2 * nozzle:
            raise ValueError(
                f"wall {self.wall} mm is less than two extrusion widths "
                f"({2 * nozzle} mm with a {nozzle} mm nozzle)"
            )
        if self.vent_width < nozzle:
            raise ValueError(f"vent width {self.vent_width} mm is narrower than the nozzle ({nozzle} mm)")
        if self.printer.layer_height > 0.8 * nozzle:
            raise ValueError(
                f"layer height {self.printer.layer_height} mm exceeds 80% of the nozzle ({nozzle} mm)"
            )
        if self.lip_depth < self.wall:
            raise ValueError(f"lip depth {self.lip_depth} mm is less than the wall ({self.wall} mm)")
        return self


def _flatten_error(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_params(values: Mapping[str, Any] | None = None, **overrides: Any) -> EnclosureParams:
    """Build validated parameters; raises `ParameterError` with a readable message."""
    data = {**(values or {}), **overrides}
    try:
        return EnclosureParams.model_validate(data)
    except ValidationError as err:
        raise ParameterError(f"invalid enclosure parameters: {_flatten_error(err)}") from err
