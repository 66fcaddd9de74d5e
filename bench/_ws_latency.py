"""A WebSocket stream client in its own process (as a dashboard would be): device `ts` -> receipt.

Run as `python bench/_ws_latency.py URL COUNT TIMEOUT_S`: prints `ready` once connected, then one JSON
line with the latencies (seconds) of the first COUNT `event` messages (or what arrived in time).
"""

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path


def start_receiver(ws_url: str, count: int, timeout_s: float) -> "subprocess.Popen[str]":
    """This script in a process of its own, connected: its last stdout line is the latencies."""
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__)), ws_url, str(count), str(timeout_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    if receiver.stdout.readline().strip() != "ready":
        receiver.kill()
        raise RuntimeError(f"the WebSocket receiver did not connect to {ws_url.split('?', maxsplit=1)[0]}")
    return receiver


def main(url: str, count: int, timeout_s: float) -> None:
    from websockets.sync.client import connect

    latencies: list[float] = []
    with connect(url) as ws:
        print("ready", flush=True)
        deadline = time.monotonic() + timeout_s
        while len(latencies) < count and time.monotonic() < deadline:
            try:
                message = json.loads(ws.recv(timeout=30))
            except TimeoutError:
                break
            now = time.time()
            if message["type"] == "event":
                latencies.append(now - datetime.fromisoformat(message["data"]["ts"]).timestamp())
    print(json.dumps(latencies), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
