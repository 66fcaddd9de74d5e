"""A profile placed in the housing: its boxes, holes and lens in the housing's frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import manifold3d as m3d

from edgefleet.enclosure.profiles import USB_KINDS, Feature, Profile
from edgefleet.enclosure.shapes import Box, box, cylinder, union_all

__all__ = ["Mounted", "PlacedBox", "local_boxes", "mount"]

Support = Literal["posts", "standoffs", "pedestal", "collar"]


@dataclass(frozen=True)
class PlacedBox:
    name: str
    kind: str
    box: Box
    diameter: float | None = None


def _feature_box(feature: Feature, profile: Profile, flipped: bool) -> Box:
    x0, x1 = feature.x
    y0, y1 = feature.y
    z0, z1 = feature.z
    if flipped:
        width, thickness = profile.pcb.width, profile.pcb.thickness
        y0, y1 = width - y1, width - y0
        z0, z1 = thickness - z1, thickness - z0
    return Box(x0, y0, z0, x1, y1, z1)


def local_boxes(profile: Profile, flipped: bool) -> list[PlacedBox]:
    """The PCB and every feature, in the profile frame (turned over about x when `flipped`)."""
    pcb = profile.pcb
    items = [PlacedBox("PCB", "pcb", Box(0.0, 0.0, 0.0, pcb.length, pcb.width, pcb.thickness))]
    for feature in profile.components:
        items.append(
            PlacedBox(feature.name, feature.kind, _feature_box(feature, profile, flipped), feature.diameter)
        )
    return items


@dataclass(frozen=True)
class Mounted:
    """A board or sensor at its place in the housing (profile origin at `origin`)."""

    profile: Profile
    flipped: bool
    origin: tuple[float, float, float]
    support: Support
    boxes: list[PlacedBox] = field(default_factory=list)

    def _at(self, b: Box) -> Box:
        ox, oy, oz = self.origin
        return Box(b.x0 + ox, b.y0 + oy, b.z0 + oz, b.x1 + ox, b.y1 + oy, b.z1 + oz)

    @property
    def placed(self) -> list[PlacedBox]:
        return [PlacedBox(p.name, p.kind, self._at(p.box), p.diameter) for p in self.boxes]

    @property
    def pcb(self) -> Box:
        return self.placed[0].box

    @property
    def envelope(self) -> Box:
        return Box.enclosing(p.box for p in self.placed)

    @property
    def holes(self) -> list[tuple[float, float, float]]:
        """Mounting holes as (x, y, diameter) in the housing frame."""
        ox, oy, _ = self.origin
        width = self.profile.pcb.width
        return [
            (hole.x + ox, (width - hole.y if self.flipped else hole.y) + oy, hole.diameter)
            for hole in self.profile.holes
        ]

    @property
    def lens(self) -> PlacedBox | None:
        return next((p for p in self.placed if p.kind == "lens"), None)

    @property
    def usb_ports(self) -> list[PlacedBox]:
        return [p for p in self.placed if p.kind in USB_KINDS]

    def solid(self) -> m3d.Manifold:
        """The board with its parts as one solid (a lens as a cylinder), for fit checks and renders."""
        parts = []
        for p in self.placed:
            if p.kind == "lens" and p.diameter is not None:
                b = p.box
                parts.append(cylinder((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, b.z0, b.z1, p.diameter / 2))
            else:
                parts.append(box(p.box))
        return union_all(parts)


def mount(profile: Profile, flipped: bool, origin: tuple[float, float, float], support: Support) -> Mounted:
    return Mounted(profile, flipped, origin, support, local_boxes(profile, flipped))
