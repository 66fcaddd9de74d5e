"""The K-means baseline (what Edge Impulse offers): distance to the nearest centroid."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass
class KMeansBaseline:
    model: Any  # sklearn KMeans

    def score(self, z: NDArray[np.float32]) -> NDArray[np.float64]:
        """Euclidean distance to the nearest centroid (standardized features)."""
        return np.asarray(self.model.transform(z).min(axis=1), dtype=np.float64)


def fit_kmeans(z: NDArray[np.float32], clusters: int, seed: int) -> KMeansBaseline:
    from sklearn.cluster import KMeans

    k = max(1, min(clusters, z.shape[0]))
    return KMeansBaseline(KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z))
