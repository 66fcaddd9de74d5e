"""Read a .tflite model's ops and input/output tensors without TensorFlow (tflite-micro only)."""

from typing import Any

import numpy as np

from edgefleet.contracts import Quantization, TensorSpec


def read_ops(model: bytes) -> list[str]:
    """Builtin op names of a .tflite flatbuffer, read with tflite-micro's schema."""
    from tflite_micro.python.tflite_micro import runtime

    names = {v: k for k, v in vars(runtime.schema_fb.BuiltinOperator).items() if not k.startswith("_")}
    parsed = runtime.convert_bytearray_to_object(bytearray(model))
    return sorted({names[runtime.get_builtin_code_from_operator_code(code)] for code in parsed.operatorCodes})


def _tensor(details: dict[str, Any]) -> TensorSpec:
    params = details["quantization_parameters"]
    quant = None
    if len(params["scales"]) == 1:
        quant = Quantization(scale=float(params["scales"][0]), zero_point=int(params["zero_points"][0]))
    return TensorSpec(
        shape=[int(v) for v in details["shape"]],
        dtype=np.dtype(details["dtype"]).name,
        quantization=quant,
    )


def io_specs(model: bytes, arena_bytes: int) -> tuple[TensorSpec, TensorSpec]:
    """The model's first input and output as the model card describes them."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
    return _tensor(interpreter.get_input_details(0)), _tensor(interpreter.get_output_details(0))
