"""Before the registry signs a model: the file is sound, the card tells the truth, and it loads.

A signature says who vouches for a model; it must not vouch for a truncated flatbuffer or for a card
that claims `flash_bytes: 1`. Checked in order: the flatbuffer walked in bounds
(`contracts.model_file`), the card's size, input and output against the file, then a load and one
inference in TensorFlow Lite Micro with the card's arena, in a child process (`server.model_probe`)
so that a model that crashes the interpreter cannot take the server with it.
"""

import base64
import hashlib
import json
import logging
import subprocess
import sys
import threading
from collections import OrderedDict
from typing import Final

from edgefleet.contracts import ModelCard, PackageError
from edgefleet.contracts.model_file import card_mismatches, inspect_tflite
from edgefleet.server.errors import ServerError

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S: Final = 60.0
# A load is deterministic in (bytes, arena): a model that loaded once is not probed again, which
# spares re-uploads (and every test bench) a child process with TensorFlow Lite Micro.
_LOADED_MAX: Final = 256
_loaded: OrderedDict[tuple[str, int], None] = OrderedDict()
_loaded_lock = threading.Lock()


class ModelCheckError(ServerError):
    """The model file or its card is not what it claims to be."""


def check_model(tflite: bytes, card: ModelCard) -> None:
    try:
        facts = inspect_tflite(tflite)
    except PackageError as err:
        raise ModelCheckError(f"model.tflite: {err}") from err
    problems = card_mismatches(card, facts)
    if problems:
        raise ModelCheckError("model_card.json does not describe model.tflite: " + "; ".join(problems))
    _probe_load(tflite, card.arena_bytes)


def _probe_load(tflite: bytes, arena: int) -> None:
    key = (hashlib.sha256(tflite).hexdigest(), arena)
    with _loaded_lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return
    _probe_in_child(tflite, arena)
    with _loaded_lock:
        _loaded[key] = None
        while len(_loaded) > _LOADED_MAX:
            _loaded.popitem(last=False)


def _probe_in_child(tflite: bytes, arena: int) -> None:
    request = json.dumps({"tflite_b64": base64.b64encode(tflite).decode(), "arena": arena})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgefleet.server.model_probe"],
            input=request,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise ModelCheckError(f"loading the model took over {PROBE_TIMEOUT_S:.0f} s") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        log.warning("model probe exited %s: %s", done.returncode, done.stderr[-500:])
        raise ModelCheckError(
            f"the model crashed TensorFlow Lite Micro while loading (exit code {done.returncode})"
        )
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        raise ModelCheckError(
            f"the model does not load in TensorFlow Lite Micro with the card's arena_bytes ({arena}): "
            f"{answer.get('error')}"
        )
