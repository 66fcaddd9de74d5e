"""Meshes out of solids, and STL/3MF files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import manifold3d as m3d
import numpy as np
import trimesh

from edgefleet.enclosure.errors import EnclosureError

__all__ = ["FORMATS", "mesh_bytes", "to_trimesh", "write_part"]

logger = logging.getLogger(__name__)

Format = Literal["stl", "3mf"]
FORMATS: tuple[Format, ...] = ("stl", "3mf")


def to_trimesh(solid: m3d.Manifold) -> trimesh.Trimesh:
    """The solid's triangle mesh (vertices shared, so watertightness can be checked)."""
    mesh = solid.to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]
    faces = np.asarray(mesh.tri_verts, dtype=np.int64)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def mesh_bytes(solid: m3d.Manifold, fmt: Format, name: str = "part") -> bytes:
    """Binary STL or 3MF of the solid (millimetres); `name` names the 3MF object."""
    mesh = to_trimesh(solid)
    try:
        if fmt == "3mf":
            scene = trimesh.Scene()
            scene.add_geometry(mesh, geom_name=name)
            data = scene.export(file_type=fmt)  # type: ignore[no-untyped-call]
        else:
            data = mesh.export(file_type=fmt)
    except ImportError as err:  # 3MF export needs lxml and networkx
        raise EnclosureError(f"cannot write {fmt.upper()}: {err} (install edgefleet[enclosure])") from err
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


def write_part(solid: m3d.Manifold, directory: Path, stem: str) -> list[Path]:
    """Write `<stem>.stl` and `<stem>.3mf` into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = directory / f"{stem}.{fmt}"
        path.write_bytes(mesh_bytes(solid, fmt, stem))
        logger.info("wrote %s", path)
        written.append(path)
    return written
