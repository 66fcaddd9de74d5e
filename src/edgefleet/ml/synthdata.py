"""Generate a synthetic format-(a) dataset with `dsp.VibrationSynth` (`edgefleet data synth`)."""

import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp import AXES, DspError, MachineConfig, VibrationSynth, write_table_csv
from edgefleet.ml.config import DataConfig, SynthConfig
from edgefleet.ml.errors import ConfigError

log = logging.getLogger(__name__)


def machine_config(synth: SynthConfig, sample_rate_hz: float) -> MachineConfig:
    known = {f.name for f in fields(MachineConfig)}
    unknown = sorted(set(synth.machine) - known)
    if unknown:
        raise ConfigError(
            f"unknown machine setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values = dict(synth.machine)
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    try:
        return MachineConfig(**{**values, "sample_rate_hz": sample_rate_hz})
    except (DspError, TypeError) as err:
        raise ConfigError(f"invalid machine settings: {err}") from err


def synthesize(data: DataConfig, synth: SynthConfig) -> tuple[NDArray[np.float32], NDArray[np.str_]]:
    """Samples [n, 6] and one label per sample, segment after segment."""
    if tuple(data.axes) != AXES:
        raise ConfigError(
            f"the synthesizer produces axes {', '.join(AXES)}; the config has {', '.join(data.axes)}"
        )
    gen = VibrationSynth(machine_config(synth, data.sample_rate_hz), seed=synth.seed)
    samples: list[NDArray[np.float32]] = []
    labels: list[NDArray[np.str_]] = []
    for segment in synth.segments:
        try:
            gen.set_fault(segment.fault, segment.severity)
        except DspError as err:
            raise ConfigError(f"segment {segment.label!r}: {err}") from err
        gen.speed = segment.speed
        gen.gains = np.full(6, segment.gain)
        n = round(segment.seconds * data.sample_rate_hz)
        chunk = gen.read(n)
        samples.append(chunk.samples)
        labels.append(np.full(n, segment.label))
        log.info(
            "synthesized %s: %d samples (%s, severity %.2f)",
            segment.label,
            n,
            segment.fault,
            segment.severity,
        )
    return np.concatenate(samples), np.concatenate(labels)


def write_synthetic(data: DataConfig, synth: SynthConfig, path: Path) -> int:
    """Write the dataset as a format-(a) CSV; returns the number of samples."""
    samples, labels = synthesize(data, synth)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table_csv(path, samples, labels, data.axes, label_column=data.label_column)
    return int(samples.shape[0])
