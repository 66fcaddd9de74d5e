"""ctypes bindings of the generated model card reader (main/ef_card.c), built from a generated
vibration project together with the core that scores with the card and the OTA checks it plugs into
(libsodium for the package signatures); model packages for its tests."""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.contracts.model_package import archive_members
from tests.ml.firmware.cbind import CC, STRICT_C_FLAGS, compile_library
from tests.ml.firmware.fleet_c import HOST
from tests.ml.firmware.ota_c import OtaCmd, build_ota_bindings
from tests.ml.firmware.ota_kit import sodium_or_skip

OK, SCHEMA, UNFIT = 0, -1, -2  # EF_CARD_OK, EF_CARD_SCHEMA, EF_CARD_UNFIT
REASON_CAP = 300
READER_SOURCES = ("ef_card.c", "ef_card_parse.c", "ef_card_json.c", "ef_core.c", "ef_rule.c", "features.c",
                  "ef_json.c", "ef_wire.c")  # fmt: skip
CARD_SOURCES = (
    *READER_SOURCES,
    "ef_ota.c",
    "ef_ota_msg.c",
    "ef_ota_verify.c",
    "ef_ota_slot.c",
    "ef_tflite.c",
)


def card_type(n_features: int) -> type[ctypes.Structure]:
    """`ef_card_t` of a project with `n_features` features (ef_core.h)."""
    doubles, floats = ctypes.c_double * n_features, ctypes.c_float * n_features
    return type(
        "Card",
        (ctypes.Structure,),
        {
            "_fields_": [
                ("model_id", ctypes.c_char * 65),
                ("model_version", ctypes.c_char * 33),
                ("mean", doubles),
                ("std", doubles),
                ("mean_f", floats),
                ("std_f", floats),
                ("input_scale", ctypes.c_double),
                ("output_scale", ctypes.c_double),
                ("input_zero_point", ctypes.c_int),
                ("output_zero_point", ctypes.c_int),
                ("threshold", ctypes.c_double),
                ("target_far", ctypes.c_double),
                ("n_fault_probes", ctypes.c_int),
                ("fault_probes", doubles * 32),
            ]
        },
    )


@dataclass
class CardLib:
    """The reader, the core and the OTA checks of one generated project."""

    lib: ctypes.CDLL
    n_features: int
    card: type[ctypes.Structure]

    def read(self, text: bytes, keep: bool = True) -> tuple[int, str, Any]:
        """ef_card_read: (result, reason, the card read or None)."""
        out = self.card() if keep else None
        reason = ctypes.create_string_buffer(REASON_CAP)
        rc = self.lib.ef_card_read(
            text, len(text), ctypes.byref(out) if out is not None else None, reason, REASON_CAP
        )
        return int(rc), reason.value.decode(), out if rc == OK else None

    def use(self, card: ctypes.Structure | None) -> None:
        """ef_core_use_card (None: the factory card). The caller keeps `card` alive."""
        self.lib.ef_core_use_card(ctypes.byref(card) if card is not None else None)

    @property
    def check_card(self) -> int:
        """The address of ef_card_ota_check, for ef_ota_config_t.check_card."""
        address = ctypes.cast(self.lib.ef_card_ota_check, ctypes.c_void_p).value
        assert address is not None
        return address

    def verify(self, config: ctypes.Structure, cmd: OtaCmd, data: bytes, running: tuple[str, str]) -> str:
        """ef_ota_verify_package: "ok" or the reason."""
        members = (ctypes.c_uint32 * 4)()
        reason = ctypes.create_string_buffer(REASON_CAP)
        rc = self.lib.ef_ota_verify_package(
            ctypes.byref(config), ctypes.byref(cmd.manifest), data, len(data), running[0].encode(),
            running[1].encode(), members, reason, REASON_CAP,
        )  # fmt: skip
        return "ok" if rc == 0 else reason.value.decode()


def build_card_lib(main_dir: Path, out: Path, sodium: str, n_features: int) -> CardLib:
    extra = (HOST / "sizes.c", HOST / "sodium_crypto.c", HOST / "card_host.c")
    path = compile_library(main_dir, out, CARD_SOURCES, "libefcard.so", extra_sources=extra, libs=(sodium,))
    lib = build_ota_bindings(ctypes.CDLL(str(path)))
    lib.host_sizeof_card.restype = ctypes.c_size_t
    card = card_type(n_features)
    assert lib.host_sizeof_card() == ctypes.sizeof(card), "Card mirrors ef_card_t"
    lib.ef_score.restype = ctypes.c_float
    lib.ef_py_float_repr.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_double]
    return CardLib(lib, n_features, card)


def build_fuzz_driver(main_dir: Path, out: Path) -> Path:
    """host/card_host.c's driver around ef_card_read, with AddressSanitizer and UBSan."""
    assert CC is not None
    program = out / "card_fuzz"
    sources = [str(main_dir / f) for f in READER_SOURCES] + [str(HOST / "card_host.c")]
    done = subprocess.run(
        [CC, *STRICT_C_FLAGS, "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-DEF_CARD_FUZZ_MAIN", "-iquote", str(main_dir), "-o", str(program), *sources, "-lm"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return program


def run_fuzz_driver(program: Path, inputs: list[bytes], workdir: Path) -> list[int]:
    path = workdir / "cards.bin"
    path.write_bytes(b"".join(len(t).to_bytes(4, "little") + t for t in inputs))
    done = subprocess.run([str(program), str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return [int(line) for line in done.stdout.split()]


def raw_package(tflite: bytes, card_json: bytes) -> bytes:
    """A package as contracts.build_package writes it, without its card check (to ship bad cards)."""
    return archive_members(tflite, card_json)


def card_text(card: dict[str, Any]) -> bytes:
    return json.dumps(card, indent=1).encode()


@dataclass(frozen=True)
class Firmware:
    """A generated vibration project and its card reader, built on the host."""

    model_dir: Path
    project: Path
    card: dict[str, Any]  # the factory card
    arena: int  # EF_ARENA_BYTES: what the device profile says
    runtime: str  # EF_RUNTIME_VERSION
    cards: CardLib


def card_firmware(model_dir: Path, root: Path) -> Firmware:
    """Generate the project of `model_dir` under `root` and build its card reader (skips without
    libsodium or a C compiler, fails under CI)."""
    from edgefleet.ml.firmware import generate_project

    sodium = sodium_or_skip()
    generate_project(model_dir, "esp32s3", root / "fw")
    settings_h = (root / "fw/main/model_settings.h").read_text()
    arena = re.search(r"#define EF_ARENA_BYTES (\d+)", settings_h)
    runtime = re.search(r'#define EF_RUNTIME_VERSION "([^"]+)"', settings_h)
    assert arena is not None and runtime is not None
    card = json.loads((model_dir / "model_card.json").read_text())
    cards = build_card_lib(root / "fw/main", root, sodium, len(card["feature_spec"]["names"]))
    return Firmware(model_dir, root / "fw", card, int(arena.group(1)), runtime.group(1), cards)
