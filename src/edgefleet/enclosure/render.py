"""A PNG preview: base, lid lifted off, and the boards inside, shaded (matplotlib, Agg)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import manifold3d as m3d
import numpy as np

if TYPE_CHECKING:
    from edgefleet.enclosure.solids import Enclosure

__all__ = ["render_png"]

_LIGHT = np.array([0.35, -0.55, 0.75])


def _faces(solid: m3d.Manifold, edge: float) -> np.ndarray:
    # Short edges keep matplotlib's painter's-algorithm depth sort close to right.
    mesh = solid.refine_to_length(edge).to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
    faces: np.ndarray = vertices[np.asarray(mesh.tri_verts)]
    return faces


def _shade(tris: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    normals = normals / np.where(lengths > 0, lengths, 1.0)[:, None]
    light = _LIGHT / np.linalg.norm(_LIGHT)
    intensity = 0.35 + 0.65 * np.clip(normals @ light, 0.0, 1.0)
    colors = np.clip(np.outer(intensity, rgb), 0.0, 1.0)
    return np.column_stack([colors, np.ones(len(colors))])


def render_png(
    enclosure: Enclosure, width_px: int = 720, height_px: int = 480, title: str | None = None
) -> bytes:
    """Render the base, the lid lifted above it, and the boards (green), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # type: ignore[import-untyped]

    layout = enclosure.layout
    lift = layout.outer.size[2] * 1.1 + layout.lip_depth
    edge = max(layout.outer.size) / 25
    parts = [
        (enclosure.base, (0.55, 0.62, 0.72)),
        (enclosure.lid.translate((0.0, 0.0, lift)), (0.85, 0.6, 0.35)),
        *((item.solid(), (0.2, 0.65, 0.3)) for item in layout.items),
    ]
    dpi = 100
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    meshes = [_faces(solid, edge) for solid, _ in parts]
    tris = np.concatenate(meshes)
    colors = np.concatenate([_shade(mesh, rgb) for mesh, (_, rgb) in zip(meshes, parts, strict=True)])
    # One collection, so faces of different parts are depth-sorted against each other.
    ax.add_collection3d(Poly3DCollection(tris, facecolors=colors, edgecolors=colors, linewidths=0.2))
    points = tris.reshape(-1, 3)
    lows, highs = [points.min(axis=0)], [points.max(axis=0)]
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_zlim(low[2], high[2])
    ax.set_box_aspect(tuple(high - low))
    ax.view_init(elev=38, azim=-62)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return _quantize(buffer.getvalue())


def _quantize(png: bytes) -> bytes:
    """Palette PNG (64 colours): a fraction of the size of the RGBA one, same look for flat shading."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        small = image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()
