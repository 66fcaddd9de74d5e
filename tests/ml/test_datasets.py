from pathlib import Path

import numpy as np
import pytest

from edgefleet.dsp import write_table_csv
from edgefleet.ml import DatasetError
from edgefleet.ml.config import DataConfig
from edgefleet.ml.datasets import load_splits


def data_config(path: Path, **kw: object) -> DataConfig:
    base: dict[str, object] = {
        "format": "csv_table",
        "path": str(path),
        "sample_rate_hz": 100,
        "window": 10,
        "hop": 5,
        "axes": ["x", "y"],
        "units": ["g", "g"],
        "range_min": [-2, -2],
        "range_max": [2, 2],
        "normal": ["normal"],
    }
    return DataConfig.model_validate({**base, **kw})


def ramp_table(path: Path, normal: int = 200, fault: int = 40) -> None:
    # Sample value = its row index, so windows reveal where they came from.
    n = normal + fault
    samples = np.stack([np.arange(n, dtype=float) + 1, np.ones(n)], axis=1)
    write_table_csv(path, samples, ["normal"] * normal + ["fault"] * fault, ["x", "y"])


def test_time_split_never_overlaps(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    ramp_table(path)
    splits = load_splits(data_config(path), path)
    train_max = splits.train[..., 0].max()
    assert train_max <= 120  # first 60% of 200 normal samples
    assert splits.calibration[..., 0].min() > train_max
    assert splits.test_normal[..., 0].min() > splits.calibration[..., 0].max()
    assert splits.test_anomaly[..., 0].min() > 200  # all fault windows, test only
    assert set(splits.test_anomaly_labels.tolist()) == {"fault"}
    assert splits.stats.windows == sum(splits.stats.per_label.values())
    assert len(splits.stats.sha256) == 64


def test_dropout_windows_are_rejected_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    samples = np.ones((240, 2))
    samples[30] = 0.0  # a stuck read inside the training part
    write_table_csv(path, samples, ["normal"] * 200 + ["fault"] * 40, ["x", "y"])
    splits = load_splits(data_config(path), path)
    assert splits.stats.rejected == 2 == splits.stats.rejected_reasons["dropout"]  # windows 20-29 and 25-34
    assert not np.any(np.all(splits.train == 0.0, axis=2))
    kept = load_splits(data_config(path, reject_dropouts=False), path)
    assert kept.stats.rejected == 0 and len(kept.train) == len(splits.train) + 2


def test_too_short_and_missing_classes(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    ramp_table(path, normal=12, fault=5)
    with pytest.raises(DatasetError, match="training part of normal recording 'normal' has 7 samples"):
        load_splits(data_config(path), path)
    ramp_table(path, normal=200, fault=40)
    with pytest.raises(DatasetError, match="no test anomaly windows"):
        load_splits(data_config(path, anomaly=["other"]), path)
    with pytest.raises(DatasetError, match="no train windows"):
        load_splits(data_config(path, normal=["healthy"]), path)
    with pytest.raises(DatasetError, match="no such file"):
        load_splits(data_config(path), tmp_path / "missing.csv")


def test_bad_rows_surface_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y,label\n1,2,normal\n1,,normal\n")
    with pytest.raises(DatasetError, match=r"d\.csv:3: column 'y'"):
        load_splits(data_config(path), path)


def test_npz_and_window_folder_formats(tmp_path: Path) -> None:
    npz = tmp_path / "r.npz"
    np.savez(npz, good=np.arange(300.0), bad=np.arange(100.0), other=np.zeros(50))
    cfg = data_config(
        npz,
        format="npz",
        axes=["x"],
        units=["g"],
        range_min=[-1],
        range_max=[1],
        normal=["good"],
        anomaly=["bad"],
    )
    splits = load_splits(cfg, npz)
    assert splits.stats.per_label == {"good": 35 + 11 + 11, "bad": 19}
    assert set(splits.test_anomaly_labels.tolist()) == {"bad"}
    root = tmp_path / "folder"
    for label, count in (("normal", 10), ("fault", 3)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            np.savetxt(root / label / f"{i:02d}.csv", np.full((10, 2), i + 1.0), delimiter=",")
    fcfg = data_config(root, format="window_folder")
    folder = load_splits(fcfg, root)
    assert (
        len(folder.train),
        len(folder.calibration),
        len(folder.test_normal),
        len(folder.test_anomaly),
    ) == (6, 2, 2, 3)
    assert folder.train[..., 0].max() < folder.test_normal[..., 0].min()  # name order = time order
