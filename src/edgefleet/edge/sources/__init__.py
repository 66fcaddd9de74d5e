"""Sensor sources behind one interface: `synthetic`, `replay`, `serial`."""

from edgefleet.edge.sources.base import Chunk, SampleSource, open_source

__all__ = ["Chunk", "SampleSource", "open_source"]
