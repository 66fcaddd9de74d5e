"""The `int8ref` backend: TFLite Micro's reference int8 kernels re-done in numpy, over a whole batch.

The firmware runs one window at a time; a fleet simulation wants thousands at once. This backend
reads the same .tflite flatbuffer and applies the same integer arithmetic as TFLM's reference
FULLY_CONNECTED kernel (int32 accumulation, QuantizeMultiplier, SaturatingRoundingDoublingHighMul,
RoundingDivideByPOT, fused activation clamp), vectorized over the batch. Tests check it is
bit-exact with the `tflm` backend. Models with other ops are refused (use `tflm`).
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefleet.edge.errors import BackendError
from edgefleet.edge.model import ModelBundle

_FULLY_CONNECTED = 9
_RESHAPE = 22
_INT8 = 9
_ACT_NONE, _ACT_RELU, _ACT_RELU6 = 0, 1, 3


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = q * 2**(shift - 31), q in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = int(math.copysign(math.floor(abs(mantissa) * (1 << 31) + 0.5), mantissa))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q, shift


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Vectorized gemmlowp-style fixed-point multiply (TFLite's double-rounding variant)."""
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = acc.astype(np.int64) * (np.int64(1) << left)
    ab = a * multiplier
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C division truncates toward zero
    high = np.where((a == -(1 << 31)) & (multiplier == -(1 << 31)), np.int64((1 << 31) - 1), high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    result: np.ndarray = (high >> right) + (remainder > threshold)
    return result


@dataclass(frozen=True)
class _Layer:
    weights: np.ndarray  # (out, in) int64
    bias: np.ndarray  # (out,) int64
    input_zero_point: int
    output_zero_point: int
    multiplier: np.ndarray  # (out,) int64
    shift: np.ndarray  # (out,) int64
    act_min: int
    act_max: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        acc = (x.astype(np.int64) - self.input_zero_point) @ self.weights.T + self.bias
        out = multiply_by_quantized_multiplier(acc, self.multiplier, self.shift) + self.output_zero_point
        result: np.ndarray = np.clip(out, self.act_min, self.act_max).astype(np.int8)
        return result


class Int8ReferenceBackend:
    name = "int8ref"

    def __init__(self, bundle: ModelBundle) -> None:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

        self.arena_bytes = int(bundle.card.arena_bytes)
        model = schema.Model.GetRootAsModel(bytearray(bundle.tflite), 0)
        if model.SubgraphsLength() != 1:
            raise BackendError(f"{bundle.directory}: int8ref runs single-subgraph models only")
        graph = model.Subgraphs(0)
        self._layers: list[_Layer] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == _RESHAPE:
                continue
            if builtin != _FULLY_CONNECTED:
                raise BackendError(
                    f"{bundle.directory}: int8ref supports FULLY_CONNECTED only, not op {builtin}"
                )
            self._layers.append(self._fully_connected(schema, model, graph, op, bundle))

    @staticmethod
    def _fully_connected(schema: Any, model: Any, graph: Any, op: Any, bundle: ModelBundle) -> _Layer:
        tensors = [
            graph.Tensors(op.Inputs(j)) if op.Inputs(j) >= 0 else None for j in range(op.InputsLength())
        ]
        out_t = graph.Tensors(op.Outputs(0))
        inp, weights_t, bias_t = [*tensors, None][:3]
        if inp is None or weights_t is None or any(t.Type() != _INT8 for t in (inp, weights_t, out_t)):
            raise BackendError(f"{bundle.directory}: int8ref needs int8 input, weights and output")

        def buffer(t: Any, dtype: type) -> np.ndarray:
            data = model.Buffers(t.Buffer()).DataAsNumpy()
            return np.frombuffer(data.tobytes(), dtype=dtype)

        w = buffer(weights_t, np.int8).reshape(weights_t.ShapeAsNumpy()).astype(np.int64)
        bias = (
            buffer(bias_t, np.int32).astype(np.int64)
            if bias_t is not None
            else np.zeros(w.shape[0], np.int64)
        )
        in_q, w_q, out_q = inp.Quantization(), weights_t.Quantization(), out_t.Quantization()
        in_scale, out_scale = float(in_q.ScaleAsNumpy()[0]), float(out_q.ScaleAsNumpy()[0])
        w_scales = np.atleast_1d(w_q.ScaleAsNumpy()).astype(np.float64)
        if w_scales.size == 1:
            w_scales = np.repeat(w_scales, w.shape[0])
        pairs = [quantize_multiplier(in_scale * s / out_scale) for s in w_scales]
        out_zp = int(out_q.ZeroPointAsNumpy()[0])
        options = schema.FullyConnectedOptions()
        table = op.BuiltinOptions()
        activation = _ACT_NONE
        if table is not None:
            options.Init(table.Bytes, table.Pos)
            activation = options.FusedActivationFunction()
        act_min, act_max = -128, 127
        if activation in (_ACT_RELU, _ACT_RELU6):
            act_min = max(act_min, out_zp)
        if activation == _ACT_RELU6:
            act_max = min(act_max, out_zp + round(6.0 / out_scale))
        elif activation not in (_ACT_NONE, _ACT_RELU):
            raise BackendError(f"{bundle.directory}: int8ref does not support fused activation {activation}")
        return _Layer(
            weights=w,
            bias=bias,
            input_zero_point=int(in_q.ZeroPointAsNumpy()[0]),
            output_zero_point=out_zp,
            multiplier=np.array([p[0] for p in pairs], dtype=np.int64),
            shift=np.array([p[1] for p in pairs], dtype=np.int64),
            act_min=act_min,
            act_max=act_max,
        )

    def invoke_batch(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(x, dtype=np.int8).reshape(len(x), -1)
        for layer in self._layers:
            out = layer(out)
        return out

    def invoke(self, x: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.invoke_batch(np.asarray(x).reshape(1, -1))[0]
        return result
