import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.dsp import read_table_csv
from edgefleet.ml.collect import CollectError, collect, open_serial


@pytest.fixture
def pty_port() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def feed(master: int, lines: list[str], delay: float = 0.05) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        for line in lines:
            os.write(master, (line + "\r\n").encode())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_collect_from_a_pseudo_terminal(pty_port: tuple[int, str]) -> None:
    master, port = pty_port
    lines = ["ax,ay,az,gx,gy,gz", "garbage"] + [f"{i},0,1,0.5,-0.5,{i / 10}" for i in range(12)]
    feed(master, lines)
    with open_serial(port, timeout_s=0.2) as device:
        result = collect(device, 10, 6, idle_timeout_s=3)
    assert result.samples.shape == (10, 6)
    assert result.samples[:, 0].tolist() == list(range(10))
    assert result.bad_lines == 2 and result.first_bad == "ax,ay,az,gx,gy,gz"


def test_collect_gives_up_when_the_device_is_silent(pty_port: tuple[int, str]) -> None:
    master, port = pty_port
    feed(master, ["1,2,3"])  # wrong axis count
    with open_serial(port, timeout_s=0.1) as device, pytest.raises(CollectError, match="no valid sample"):
        collect(device, 5, 6, idle_timeout_s=0.5)


def test_open_missing_port() -> None:
    with pytest.raises(CollectError, match="cannot open serial port /dev/does-not-exist"):
        open_serial("/dev/does-not-exist")


def test_cli_collect_appends_labelled_windows(pty_port: tuple[int, str], tmp_path: Path) -> None:
    master, port = pty_port
    feed(master, [f"{i},{i},1,0,0,0" for i in range(40)], delay=0.3)
    out = tmp_path / "rec.csv"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "collect",
            "--port",
            port,
            "--label",
            "normal",
            "--out",
            str(out),
            "--windows",
            "2",
            "--window",
            "16",
            "--idle-timeout",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    table = read_table_csv(out, ["ax", "ay", "az", "gx", "gy", "gz"])
    assert table.samples.shape == (32, 6) and set(table.labels.tolist()) == {"normal"}
    bad = CliRunner().invoke(app, ["data", "collect", "--port", port, "--label", "bad label!"])
    assert bad.exit_code == 2
