"""A real, tiny int8 TFLite model built without TensorFlow: one FULLY_CONNECTED layer, n -> n.

Registry tests upload it: the server walks, checks and loads every model before it signs it, so a
TFLite-shaped blob no longer passes. Built with the flatbuffer object API of tflite-micro's schema.
"""

from functools import cache

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

INPUT_QUANT = (0.05, -3)
OUTPUT_QUANT = (0.04, 2)
WEIGHT_SCALE = 0.01
ARENA_BYTES = 2048


def _quant(scale: float, zero_point: int) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zero_point]
    return q


def _tensor(shape: list[int], dtype: int, buffer: int, name: bytes, scale: float, zp: int) -> schema.TensorT:
    t = schema.TensorT()
    t.shape, t.type, t.buffer, t.name, t.quantization = shape, dtype, buffer, name, _quant(scale, zp)
    return t


@cache
def tiny_fc_model(n: int = 4, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    weights = rng.integers(-100, 100, size=(n, n)).astype(np.int8)
    bias = rng.integers(-500, 500, size=n).astype(np.int32)
    buffers = [schema.BufferT() for _ in range(5)]
    buffers[2].data = list(weights.tobytes())
    buffers[3].data = list(bias.tobytes())
    int8, int32 = schema.TensorType.INT8, schema.TensorType.INT32
    tensors = [
        _tensor([1, n], int8, 1, b"input", *INPUT_QUANT),
        _tensor([n, n], int8, 2, b"weights", WEIGHT_SCALE, 0),
        _tensor([n], int32, 3, b"bias", INPUT_QUANT[0] * WEIGHT_SCALE, 0),
        _tensor([1, n], int8, 4, b"output", *OUTPUT_QUANT),
    ]
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = schema.ActivationFunctionType.NONE
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.FullyConnectedOptions, options
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [0], [3], [op], b"main"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 4
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run(model: bytes, x: list[int]) -> list[int]:
    """The model's int8 output for one input, from the TFLM interpreter."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=ARENA_BYTES)
    interpreter.set_input(np.asarray([x], dtype=np.int8), 0)
    interpreter.invoke()
    return [int(v) for v in interpreter.get_output(0).ravel()]
