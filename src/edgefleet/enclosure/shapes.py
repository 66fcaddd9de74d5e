"""Small solid-building helpers over manifold3d (lengths in mm, boxes given by their corners)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import manifold3d as m3d

__all__ = ["SEGMENTS", "Box", "box", "cylinder", "pointer", "union_all"]

SEGMENTS = 48
"""Facets per circle. Every circle is built with its facets (not its corners) on the nominal
radius, so holes are never smaller and bosses never thinner than asked."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box by its low and high corners."""

    x0: float
    y0: float
    z0: float
    x1: float
    y1: float
    z1: float

    def grow(self, d: float) -> Box:
        return Box(self.x0 - d, self.y0 - d, self.z0 - d, self.x1 + d, self.y1 + d, self.z1 + d)

    def overlaps_xy(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    @property
    def size(self) -> tuple[float, float, float]:
        return (self.x1 - self.x0, self.y1 - self.y0, self.z1 - self.z0)

    @staticmethod
    def enclosing(boxes: Iterable[Box]) -> Box:
        """The smallest box that holds all of `boxes`."""
        boxes = list(boxes)
        return Box(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            min(b.z0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
            max(b.z1 for b in boxes),
        )


def box(b: Box) -> m3d.Manifold:
    sx, sy, sz = b.size
    if min(sx, sy, sz) <= 0:
        return m3d.Manifold()
    return m3d.Manifold.cube((sx, sy, sz)).translate((b.x0, b.y0, b.z0))


def cylinder(
    x: float, y: float, z0: float, z1: float, radius: float, *, radius_top: float | None = None
) -> m3d.Manifold:
    """A vertical cylinder (or cone frustum) whose facets lie on the given radii."""
    scale = 1.0 / math.cos(math.pi / SEGMENTS)
    top = radius if radius_top is None else radius_top
    solid = m3d.Manifold.cylinder(z1 - z0, radius * scale, top * scale, SEGMENTS)
    # Rotate half a facet so that facets, not corners, face the axes (boxes meet them flush).
    return solid.rotate((0.0, 0.0, 180.0 / SEGMENTS)).translate((x, y, z0))


def union_all(solids: Iterable[m3d.Manifold]) -> m3d.Manifold:
    items = [s for s in solids if not s.is_empty()]
    if not items:
        return m3d.Manifold()
    return m3d.Manifold.batch_boolean(items, m3d.OpType.Add)


def pointer(length: float, half_width: float, depth: float) -> m3d.Manifold:
    """A flat pentagon pointing +x (a 90-degree tip, no thin barbs), `depth` thick in z, from x = 0."""
    tip = min(half_width, length / 2)
    outline = [
        (0.0, -half_width),
        (length - tip, -half_width),
        (length, 0.0),
        (length - tip, half_width),
        (0.0, half_width),
    ]
    return m3d.Manifold.extrude(m3d.CrossSection([outline]), depth)
