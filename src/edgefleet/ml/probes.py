"""Fault probes for the model card: a few raw feature vectors of known faults from the test set.

A device scores them after commissioning, moved onto its field baseline, to tell whether it can
still see the faults the model was trained to find (`edge.commissioning`, `contracts.FaultProbe`).
"""

import numpy as np
from numpy.typing import NDArray

from edgefleet.contracts import FaultProbe
from edgefleet.contracts.model_card import MAX_FAULT_PROBES


def select_fault_probes(
    features: NDArray[np.floating], labels: NDArray[np.str_] | list[str], limit: int = MAX_FAULT_PROBES
) -> list[FaultProbe]:
    """Up to `limit` probes, shared evenly between fault labels, spread over each label's windows."""
    x = np.asarray(features, dtype=np.float64)
    names = np.asarray(labels).astype(str)
    if len(x) == 0 or len(names) != len(x):
        return []
    kinds = sorted(set(names.tolist()))
    each = max(1, limit // len(kinds))
    probes: list[FaultProbe] = []
    for label in kinds:
        rows = np.nonzero(names == label)[0]
        picked = rows[np.linspace(0, len(rows) - 1, min(each, len(rows))).round().astype(int)]
        probes += [FaultProbe(label=_safe(label), features=[float(v) for v in x[i]]) for i in picked]
    return probes[:limit]


def _safe(label: str) -> str:
    """A contract `Name` (letters, digits, `_.:+-`, 64 characters)."""
    cleaned = "".join(c if c.isalnum() or c in "_.:+-" else "_" for c in label)[:64]
    return cleaned or "fault"
