"""Load a model in TensorFlow Lite Micro in a process of its own (`python -m edgefleet.server.model_probe`).

The registry must not sign a model that does not load, but a damaged flatbuffer or a too-small
arena can crash the interpreter (not just fail): so the load runs here, in a child process, and
the server reads one JSON line from its stdout. Input on stdin: {"tflite_b64": ..., "arena": N}.
"""

import base64
import json
import sys


def probe(tflite: bytes, arena: int) -> dict[str, object]:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=arena)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
    interpreter.invoke()
    output = interpreter.get_output(0)
    return {"ok": True, "output_shape": [int(v) for v in output.shape]}


def main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        result = probe(base64.b64decode(request["tflite_b64"]), int(request["arena"]))
    except Exception as err:  # the answer is the error: the parent turns it into a refusal
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"[:500]}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
