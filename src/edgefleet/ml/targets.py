"""MCU targets: memory budgets for the model and a latency estimate from the MAC count.

Budgets are what we leave to the model on a typical edgefleet node (the rest runs Wi-Fi/BLE, MQTT,
the outbox and the application). Latency = (MACs * cycles_per_mac + ops * cycles_per_op) / clock.

Sources of the cycle costs (estimates, not measured on hardware here):
- Cortex-M4F (STM32F4, nRF52840): CMSIS-NN int8 fully-connected kernels use the dual 16-bit
  SMLAD MAC, about 2 MACs/cycle at peak (Lai, Suda, Chandra, "CMSIS-NN: Efficient Neural Network
  Kernels for Arm Cortex-M CPUs", arXiv:1801.06601, 2018); we take 1 cycle/MAC to include loads
  and requantization.
- ESP32-S3: ESP-NN uses the LX7 128-bit SIMD (Espressif esp-nn README benchmarks show roughly
  5-10x over the ANSI C kernels); we take 0.5 cycle/MAC.
- ESP32 (LX6, no SIMD): ESP-NN's optimized C path, about 3 cycles/MAC.
- Per-operator overhead of the TFLM interpreter (invoke, prepare-time constants, requantize):
  about 3000 cycles per op on these cores.
"""

from dataclasses import dataclass
from typing import Any

from edgefleet.ml.errors import MlError

TFLM_RUNTIME_FLASH_BYTES = 40_000  # TFLM core + FULLY_CONNECTED kernel, -Os (estimate)
CYCLES_PER_OP = 3000
COST_SOURCE = (
    "estimates: CMSIS-NN (arXiv:1801.06601) ~1 cycle/MAC on Cortex-M4F incl. overhead; "
    "ESP-NN README: ~0.5 cycle/MAC on ESP32-S3 (SIMD), ~3 on ESP32; ~3000 cycles per TFLM op"
)


@dataclass(frozen=True)
class Target:
    name: str
    core: str
    clock_mhz: float
    sram_budget_bytes: int  # for the tensor arena
    flash_budget_bytes: int  # for the model data and the TFLM runtime code
    cycles_per_mac: float


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("esp32-s3", "Xtensa LX7 (ESP-NN SIMD)", 240, 64 * 1024, 512 * 1024, 0.5),
        Target("esp32", "Xtensa LX6 (ESP-NN)", 240, 48 * 1024, 512 * 1024, 3.0),
        Target("cortex-m4f", "Cortex-M4F STM32F4 (CMSIS-NN)", 168, 32 * 1024, 256 * 1024, 1.0),
        Target("nrf52840", "Cortex-M4F nRF52840 (CMSIS-NN)", 64, 16 * 1024, 128 * 1024, 1.0),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise MlError(f"unknown MCU target {name!r}; known: {', '.join(TARGETS)}") from None


def assess(target: Target, flash_bytes: int, arena_bytes: int, macs: int, ops: int) -> dict[str, Any]:
    """Whether the model fits the target's budgets (and why not), with its estimated latency."""
    flash_needed = flash_bytes + TFLM_RUNTIME_FLASH_BYTES
    reasons = []
    if arena_bytes > target.sram_budget_bytes:
        reasons.append(f"arena {arena_bytes} B exceeds the {target.sram_budget_bytes} B SRAM budget")
    if flash_needed > target.flash_budget_bytes:
        reasons.append(
            f"model + runtime {flash_needed} B exceed the {target.flash_budget_bytes} B flash budget"
        )
    cycles = macs * target.cycles_per_mac + ops * CYCLES_PER_OP
    return {
        "fits": not reasons,
        "why_not": "; ".join(reasons) or None,
        "est_latency_ms": round(cycles / (target.clock_mhz * 1e3), 4),
        "core": target.core,
        "clock_mhz": target.clock_mhz,
        "sram_budget_bytes": target.sram_budget_bytes,
        "flash_budget_bytes": target.flash_budget_bytes,
        "cycles_per_mac": target.cycles_per_mac,
    }
