"""ctypes bindings of the generated OTA core (main/ef_ota*.c) and a host harness for it: the journal
and two package slots (NOR semantics: a write only clears bits) with a power cut after any chosen
write, a package server for the platform's http_get (Range, refusals, short bodies), and a device
that boots, loads the slot's model into the TFLM interpreter and runs its self-test.

Crypto is Debian's libsodium, linked as the chip links the libsodium component."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.contracts import Channel, OtaState, decode
from tests.ml.firmware.cbind import build_model_independent
from tests.ml.firmware.fleet_c import FLEET_SOURCES, HOST

OTA_SOURCES = (
    "main/ef_ota.c",
    "main/ef_ota_msg.c",
    "main/ef_ota_verify.c",
    "main/ef_ota_slot.c",
    "main/ef_tflite.c",
)
SLOT_SIZE = 64 * 1024
FACTORY, RELOAD = -1, 1
STATES = ("DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED", "FAILED", "ROLLED_BACK")
ID, VERSION = ctypes.c_char * 65, ctypes.c_char * 33


def sodium_library() -> str | None:
    """The linker argument for the system's libsodium (no development package needed), or None."""
    name = ctypes.util.find_library("sodium")
    return f"-l:{name}" if name else None


class Manifest(ctypes.Structure):
    _fields_ = [
        ("model_id", ID),
        ("model_version", VERSION),
        ("url", ctypes.c_char * 513),
        ("sha256", ctypes.c_uint8 * 32),
        ("size", ctypes.c_uint32),
        ("min_runtime_version", VERSION),
        ("signature", ctypes.c_uint8 * 64),
        ("signature_len", ctypes.c_int32),
        ("key_id", ID),
        ("has_card_sha256", ctypes.c_uint8),
        ("card_sha256", ctypes.c_uint8 * 32),
        ("n_self_test", ctypes.c_uint8),
    ]


class OtaCmd(ctypes.Structure):
    _fields_ = [
        ("device_id", ID),
        ("command_id", ID),
        ("action", ctypes.c_int),
        ("rollout_id", ID),
        ("has_manifest", ctypes.c_int),
        ("manifest", Manifest),
        ("self_test_offset", ctypes.c_uint32),
        ("self_test_len", ctypes.c_uint32),
    ]


class Report(ctypes.Structure):
    _fields_ = [
        ("state", ctypes.c_int),
        ("rollout_id", ID),
        ("model_id", ID),
        ("model_version", VERSION),
        ("active_slot", ctypes.c_int),
        ("has_progress", ctypes.c_int),
        ("progress", ctypes.c_double),
        ("reason", ctypes.c_char * 257),
    ]


class Key(ctypes.Structure):
    _fields_ = [("key_id", ctypes.c_char * 17), ("public_key", ctypes.c_uint8 * 32)]


class Config(ctypes.Structure):
    _fields_ = [
        ("device_id", ctypes.c_char_p),
        ("keys", Key * 4),
        ("n_keys", ctypes.c_int),
        ("kind", ctypes.c_char_p),
        ("task", ctypes.c_char_p),
        ("axes", ctypes.POINTER(ctypes.c_char_p)),
        ("units", ctypes.POINTER(ctypes.c_char_p)),
        ("n_axes", ctypes.c_int),
        ("sample_rate_hz", ctypes.c_double),
        ("runtime_version", ctypes.c_char_p),
        ("arena_bytes", ctypes.c_uint32),
        ("factory_model_id", ctypes.c_char_p),
        ("factory_model_version", ctypes.c_char_p),
        ("require_self_test", ctypes.c_int),
        ("allow_downgrade", ctypes.c_int),
        ("max_pending_boots", ctypes.c_int),
        ("download_attempts", ctypes.c_int),
        ("pending_ack_timeout_ms", ctypes.c_uint32),
        ("backoff_min_ms", ctypes.c_uint32),
        ("backoff_max_ms", ctypes.c_uint32),
        ("seed", ctypes.c_uint32),
        ("check_card", ctypes.c_void_p),  # int (*)(void *, const char *, uint32_t, char *, size_t) or NULL
        ("check_card_ctx", ctypes.c_void_p),
    ]


V = ctypes.c_void_p
JOURNAL_LOAD = ctypes.CFUNCTYPE(ctypes.c_int, V, V, ctypes.c_uint32)
JOURNAL_SAVE = ctypes.CFUNCTYPE(ctypes.c_int, V, V, ctypes.c_uint32)
SLOT_SIZE_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, V, ctypes.c_int)
ERASE_FN = ctypes.CFUNCTYPE(ctypes.c_int, V, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32)
SLOT_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, V, ctypes.c_int, ctypes.c_uint32, V, ctypes.c_uint32)
SLOT_MAP = ctypes.CFUNCTYPE(V, V, ctypes.c_int)
HTTP_GET = ctypes.CFUNCTYPE(ctypes.c_int, V, ctypes.c_char_p, ctypes.c_uint32, V)
SLEEP = ctypes.CFUNCTYPE(None, V, ctypes.c_uint32)
REPORT = ctypes.CFUNCTYPE(None, V, ctypes.POINTER(Report))
CONFIRMED = ctypes.CFUNCTYPE(None, V)
INVOKE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    V,
    ctypes.POINTER(ctypes.c_int8),
    ctypes.c_uint32,
    ctypes.POINTER(ctypes.c_int8),
    ctypes.c_uint32,
)


class Platform(ctypes.Structure):
    _fields_ = [
        ("ctx", V),
        ("journal_load", JOURNAL_LOAD),
        ("journal_save", JOURNAL_SAVE),
        ("slot_size", SLOT_SIZE_FN),
        ("slot_erase", ERASE_FN),
        ("slot_write", SLOT_WRITE),
        ("slot_map", SLOT_MAP),
        ("http_get", HTTP_GET),
        ("sleep_ms", SLEEP),
        ("report", REPORT),
        ("confirmed", CONFIRMED),
    ]


def build_ota(out: Path, sodium: str) -> ctypes.CDLL:
    sources = (*FLEET_SOURCES, *OTA_SOURCES)
    extra = (HOST / "sizes.c", HOST / "sodium_crypto.c")
    return build_ota_bindings(
        ctypes.CDLL(str(build_model_independent(sources, out, "libota.so", extra, (sodium,))))
    )


def build_ota_bindings(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Argument and result types of a library holding the OTA core and host/sizes.c."""
    for name in ("host_sizeof_ota", "host_sizeof_ota_cmd", "host_sizeof_ota_config"):
        getattr(lib, name).restype = ctypes.c_size_t
    assert lib.host_sizeof_ota_cmd() == ctypes.sizeof(OtaCmd), "OtaCmd mirrors ef_ota_cmd_t"
    assert lib.host_sizeof_ota_config() == ctypes.sizeof(Config), "Config mirrors ef_ota_config_t"
    lib.ef_ota_state_name.restype = ctypes.c_char_p
    lib.ef_ota_http_begin.argtypes = [V, ctypes.c_int, ctypes.c_uint32, ctypes.c_int64]
    lib.ef_ota_http_data.argtypes = [V, ctypes.c_char_p, ctypes.c_uint32]
    lib.ef_ota_model_loaded.argtypes = [V, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    lib.ef_ota_tick.argtypes = [V, ctypes.c_uint32]
    lib.ef_ota_format_state.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_uint64,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(Report),
    ]
    return lib


def parse_cmd(lib: ctypes.CDLL, payload: bytes, device_id: str) -> tuple[int, OtaCmd, str]:
    cmd, err = OtaCmd(), ctypes.create_string_buffer(160)
    rc = lib.ef_ota_cmd_parse(payload, len(payload), device_id.encode(), ctypes.byref(cmd), err, 160)
    return int(rc), cmd, err.value.decode()


def format_state(lib: ctypes.CDLL, report: Report, device_id: str, seq: int) -> OtaState:
    buf = ctypes.create_string_buffer(1024)
    n = lib.ef_ota_format_state(
        buf, 1024, device_id.encode(), seq, b"2026-12-01T10:00:00.000Z", 1, ctypes.byref(report)
    )
    assert n == len(buf.value) > 0
    state = decode(Channel.OTA_STATE, buf.value)
    assert isinstance(state, OtaState)
    return state


@dataclass
class Storage:
    """What survives a power cut: the journal blob and the two slots. `cut_after`: the number of
    persistent operations (journal saves, slot erases and writes) after which the power goes."""

    journal: bytes | None = None
    slots: list[ctypes.Array[ctypes.c_uint8]] = field(
        default_factory=lambda: [(ctypes.c_uint8 * SLOT_SIZE)(*([0xFF] * SLOT_SIZE)) for _ in range(2)]
    )
    ops: int = 0
    cut_after: int | None = None
    dead: bool = False

    def persist(self) -> bool:
        """Count one persistent operation; False once the power is gone."""
        if self.dead:
            return False
        self.ops += 1
        if self.cut_after is not None and self.ops >= self.cut_after:
            self.dead = True  # this operation completes, nothing after it does
        return True

    def power_on(self) -> None:
        self.dead, self.cut_after = False, None

    def slot_bytes(self, slot: int, n: int, offset: int = 0) -> bytes:
        return bytes(self.slots[slot][offset : offset + n])


@dataclass
class Server:
    """The package server the platform's http_get talks to."""

    lib: ctypes.CDLL
    files: dict[str, bytes] = field(default_factory=dict)
    chunk: int = 1024
    fail_next: int = 0  # network errors before answering
    limit: int | None = None  # close the connection after this many body bytes
    ignore_range: bool = False
    status: int | None = None
    offsets: list[int] = field(default_factory=list)
    on_chunk: Callable[[int], None] | None = None

    def get(self, url: str, offset: int, h: int) -> int:
        self.offsets.append(offset)
        if self.fail_next > 0:
            self.fail_next -= 1
            return -1
        data = self.files.get(url)
        if data is None or self.status is not None:
            self.lib.ef_ota_http_begin(h, self.status or 404, 0, -1)
            return 0
        partial = offset > 0 and not self.ignore_range
        body = data[offset:] if partial else data
        if self.lib.ef_ota_http_begin(h, 206 if partial else 200, offset if partial else 0, len(body)) != 0:
            return 0
        sent = body if self.limit is None else body[: self.limit]
        for i in range(0, len(sent), self.chunk):
            piece = sent[i : i + self.chunk]
            if self.lib.ef_ota_http_data(h, piece, len(piece)) != 0:
                return 0
            if self.on_chunk:
                self.on_chunk(i + len(piece))
        return -104 if len(sent) < len(body) else 0  # ECONNRESET: cut short
