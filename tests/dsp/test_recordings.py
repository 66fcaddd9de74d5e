from pathlib import Path

import numpy as np
import pytest

from edgefleet.dsp import RecordingError, read_npz, read_table_csv, read_window_folder, write_table_csv

AXES = ("ax", "ay")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_table_round_trip_and_column_order(tmp_path: Path) -> None:
    samples = np.array([[0.5, -1.0], [1.25, 2.0], [3.0, 4.0]])
    path = tmp_path / "t.csv"
    write_table_csv(path, samples, ["normal", "normal", "fault"], AXES)
    table = read_table_csv(path, AXES)
    np.testing.assert_allclose(table.samples, samples)
    assert table.labels.tolist() == ["normal", "normal", "fault"]
    other = write(tmp_path / "o.csv", "label,ay,extra,ax\nn,1,x,2\n")
    assert read_table_csv(other, AXES).samples.tolist() == [[2.0, 1.0]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"t\.csv:1: empty file"),
        ("ax,label\n1,n\n", r"t\.csv:1: header lacks column\(s\) ay"),
        ("ax,ay,label\n1,2,n\n1,2\n", r"t\.csv:3: ragged row: 2 fields"),
        ("ax,ay,label\n1,2,n\n1,nan,n\n", r"t\.csv:3: column 'ay': 'nan' is not a finite"),
        ("ax,ay,label\n1,abc,n\n", r"t\.csv:2: column 'ay': 'abc' is not a number"),
        ("ax,ay,label\n1,2,\n", r"t\.csv:2: empty 'label'"),
        ("ax,ay,label\n", "0 data rows"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        read_table_csv(write(tmp_path / "t.csv", text), AXES)


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot open"):
        read_table_csv(tmp_path / "none.csv", AXES)


def test_window_folder_reads_one_window_per_file(tmp_path: Path) -> None:
    write(tmp_path / "normal" / "b.csv", "1,2\n3,4\n5,6\n")
    write(tmp_path / "normal" / "a.csv", "0,0\n0,0\n0,1\n")
    write(tmp_path / "fault" / "x.csv", "9,9\n9,9\n9,9\n")
    ws = read_window_folder(tmp_path, 2)
    assert ws.windows.shape == (3, 3, 2)
    assert ws.labels.tolist() == ["fault", "normal", "normal"]
    assert [f.name for f in ws.files] == ["x.csv", "a.csv", "b.csv"]
    assert ws.windows[2, 2].tolist() == [5.0, 6.0]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"n/a.csv": "1,2,3\n"}, r"a\.csv:1: 3 values, expected 2"),
        ({"n/a.csv": "1,2\n3,4\n", "n/b.csv": "1,2\n"}, r"b\.csv: 1 samples, expected a window of 2"),
        ({"n/a.csv": "1,2\ninf,2\n"}, r"a\.csv:2: column '#1'"),
        ({"n/a.csv": ""}, r"a\.csv: no samples"),
        ({}, "no <class>/\\*.csv"),
    ],
)
def test_window_folder_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    tmp_path.joinpath("root").mkdir()
    for name, text in files.items():
        write(tmp_path / "root" / name, text)
    with pytest.raises(RecordingError, match=message):
        read_window_folder(tmp_path / "root", 2)


def test_npz_recordings(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    np.savez(path, **{"1797_Normal": np.arange(5.0), "OR@6": np.ones((4, 1))})  # type: ignore[arg-type]
    data = read_npz(path)
    assert sorted(data) == ["1797_Normal", "OR@6"]
    assert data["1797_Normal"].shape == (5, 1)
    assert list(read_npz(path, keys=["OR@6"], n_axes=1)) == ["OR@6"]


@pytest.mark.parametrize(
    ("kwargs", "arrays", "message"),
    [
        ({"keys": ["x"]}, {"a": np.zeros(3)}, "no recording 'x'; found a"),
        ({"n_axes": 2}, {"a": np.zeros(3)}, "has 1 axes, expected 2"),
        ({}, {"a": np.array([0.0, np.nan])}, "non-finite value at sample 1"),
        ({}, {"a": np.zeros((2, 2, 2))}, "expected \\[n\\] or \\[n, axes\\]"),
        ({"min_samples": 10}, {"a": np.zeros(3)}, "3 samples, fewer than the 10"),
    ],
)
def test_npz_errors(
    tmp_path: Path, kwargs: dict[str, object], arrays: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "r.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match=message):
        read_npz(path, **kwargs)  # type: ignore[arg-type]


def test_npz_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"bad\.npz: cannot read"):
        read_npz(write(tmp_path / "bad.npz", "hello"))
