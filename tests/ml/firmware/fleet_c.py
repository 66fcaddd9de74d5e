"""ctypes bindings of the generated fleet modules (ef_wire, ef_outbox, ef_cmd, ef_provision) and a
simulated NOR flash for the outbox ring: writes only clear bits, erases set a 4096-byte sector to
0xFF, every operation is counted, and a power cut can be injected after any single write or erase."""

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.ml.firmware.cbind import build_model_independent

HOST = Path(__file__).parent / "host"
SECTOR = 4096
FLEET_SOURCES = (
    "main/ef_json.c",
    "main/ef_wire.c",
    "main/ef_cmd.c",
    "main/ef_provision.c",
    "main/ef_outbox.c",
    "main/ef_outbox_send.c",
)

READ = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
ERASE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)


class FlashT(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("read", READ), ("write", WRITE), ("erase_sector", ERASE)]


class OutboxConfig(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("end_to_end", ctypes.c_int),
        ("max_inflight", ctypes.c_uint32),
        ("ack_timeout_ms", ctypes.c_uint32),
        ("ack_timeout_max_ms", ctypes.c_uint32),
        ("seed", ctypes.c_uint32),
    ]


class Entry(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("addr", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
        ("sent_ms", ctypes.c_uint32),
        ("msg_id", ctypes.c_int32),
        ("tag", ctypes.c_uint8),
        ("state", ctypes.c_uint8),
        ("resend", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
    ]


STAT_NAMES = (
    "enqueued",
    "acked",
    "dropped",
    "published",
    "resent",
    "resend_rounds",
    "acks_unknown",
    "acks_duplicate",
    "torn",
    "flash_writes",
    "flash_bytes",
    "flash_erases",
    "flash_errors",
)


class Stats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in STAT_NAMES]


class Msg(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("tag", ctypes.c_uint8),
        ("resend", ctypes.c_int),
    ]


class AckRange(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint64), ("hi", ctypes.c_uint64)]


class CmdArg(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_char * 65),
        ("type", ctypes.c_int),
        ("str", ctypes.c_char * 129),
        ("i", ctypes.c_int64),
        ("f", ctypes.c_double),
        ("b", ctypes.c_int),
    ]


class Command(ctypes.Structure):
    _fields_ = [
        ("device_id", ctypes.c_char * 65),
        ("command_id", ctypes.c_char * 65),
        ("command", ctypes.c_int),
        ("n_args", ctypes.c_int),
        ("args", CmdArg * 16),
    ]


class Provision(ctypes.Structure):
    _fields_ = [
        ("ssid", ctypes.c_char * 33),
        ("ssid_len", ctypes.c_size_t),
        ("passphrase", ctypes.c_char * 253),
        ("passphrase_len", ctypes.c_size_t),
        ("security", ctypes.c_int),
        ("hidden", ctypes.c_int),
        ("server_url", ctypes.c_char * 2033),
        ("device_id", ctypes.c_char * 65),
        ("claim_token", ctypes.c_char * 130),
    ]


def build_fleet(out: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_model_independent(FLEET_SOURCES, out, "libfleet.so", (HOST / "sizes.c",))))
    lib.host_sizeof_outbox.restype = ctypes.c_size_t
    lib.ef_outbox_stats.restype = ctypes.POINTER(Stats)
    lib.ef_outbox_next_seq.restype = ctypes.c_uint64
    lib.ef_outbox_dropped.restype = ctypes.c_uint64
    lib.ef_outbox_depth.restype = ctypes.c_uint32
    lib.ef_outbox_on_ack_ranges.restype = ctypes.c_uint32
    lib.ef_outbox_enqueue.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_uint8,
        ctypes.c_char_p,
        ctypes.c_uint32,
    ]
    lib.ef_outbox_mark_in_flight.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint32]
    lib.ef_outbox_next_to_send.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.POINTER(Msg),
        ctypes.c_void_p,
        ctypes.c_uint32,
    ]
    lib.ef_crc32.restype = ctypes.c_uint32
    lib.ef_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    lib.ef_provision_reason.restype = ctypes.c_char_p
    lib.ef_cmd_name.restype = ctypes.c_char_p
    return lib


@dataclass
class SimFlash:
    """NOR flash behind ctypes callbacks. `after_op(kind, offset, data)` runs after each write/erase."""

    size: int
    data: bytearray = field(default_factory=bytearray)
    writes: int = 0
    erases: int = 0
    dead: bool = False  # after a power cut: every write and erase fails, nothing changes
    after_op: Callable[[str, int, bytes], None] | None = None

    def __post_init__(self) -> None:
        if not self.data:
            self.data = bytearray(b"\xff" * self.size)
        self._cbs = (READ(self._read), WRITE(self._write), ERASE(self._erase))
        self.struct = FlashT(None, *self._cbs)

    def _read(self, _ctx: object, off: int, buf: int, n: int) -> int:
        if off + n > self.size:
            return -1
        ctypes.memmove(buf, bytes(self.data[off : off + n]), n)
        return 0

    def _write(self, _ctx: object, off: int, src: int, n: int) -> int:
        if self.dead or off + n > self.size:
            return -1
        new = ctypes.string_at(src, n)
        old = np.frombuffer(bytes(self.data[off : off + n]), dtype=np.uint8)
        self.data[off : off + n] = (old & np.frombuffer(new, dtype=np.uint8)).tobytes()  # NOR: 1 -> 0 only
        self.writes += 1
        if self.after_op:
            self.after_op("write", off, new)
        return 0

    def _erase(self, _ctx: object, index: int) -> int:
        if self.dead or (index + 1) * SECTOR > self.size:
            return -1
        self.data[index * SECTOR : (index + 1) * SECTOR] = b"\xff" * SECTOR
        self.erases += 1
        if self.after_op:
            self.after_op("erase", index * SECTOR, b"")
        return 0


class Outbox:
    """One boot of the outbox on a SimFlash (a reboot is a new Outbox on the same flash)."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        flash: SimFlash,
        *,
        cap: int = 256,
        end_to_end: bool = True,
        max_inflight: int = 8,
        ack_timeout_ms: int = 1000,
        ack_timeout_max_ms: int = 8000,
    ) -> None:
        self.lib, self.flash = lib, flash
        self.mem = ctypes.create_string_buffer(lib.host_sizeof_outbox())
        self.index = (Entry * cap)()
        self.config = OutboxConfig(
            flash.size, int(end_to_end), max_inflight, ack_timeout_ms, ack_timeout_max_ms, 7
        )
        rc = lib.ef_outbox_init(
            self.mem, ctypes.byref(flash.struct), ctypes.byref(self.config), self.index, cap
        )
        assert rc == 0, rc

    def enqueue(self, seq: int, payload: bytes, tag: int = 1) -> int:
        return int(self.lib.ef_outbox_enqueue(self.mem, seq, tag, payload, len(payload)))

    def entries(self) -> list[Entry]:
        return [self.index[i] for i in range(self.depth)]

    def seqs(self) -> list[int]:
        return [int(e.seq) for e in self.entries()]

    @property
    def depth(self) -> int:
        return int(self.lib.ef_outbox_depth(self.mem))

    @property
    def next_seq(self) -> int:
        return int(self.lib.ef_outbox_next_seq(self.mem))

    def stats(self) -> dict[str, int]:
        s = self.lib.ef_outbox_stats(self.mem).contents
        return {name: int(getattr(s, name)) for name in STAT_NAMES}

    def next_to_send(self, now_ms: int, cap: int = 70_000) -> tuple[Msg, bytes] | None:
        msg, buf = Msg(), ctypes.create_string_buffer(cap)
        rc = self.lib.ef_outbox_next_to_send(self.mem, now_ms, ctypes.byref(msg), buf, cap)
        assert rc >= 0, rc
        return (msg, buf.raw[: msg.len]) if rc == 1 else None

    def publish(self, seq: int, msg_id: int, now_ms: int) -> None:
        self.lib.ef_outbox_mark_in_flight(self.mem, seq, msg_id, now_ms)

    def puback(self, msg_id: int) -> int:
        return int(self.lib.ef_outbox_on_puback(self.mem, msg_id))

    def ack(self, ranges: list[tuple[int, int]]) -> int:
        array = (AckRange * max(1, len(ranges)))(*[AckRange(lo, hi) for lo, hi in ranges])
        return int(self.lib.ef_outbox_on_ack_ranges(self.mem, array, len(ranges)))

    def disconnect(self) -> None:
        self.lib.ef_outbox_on_disconnect(self.mem)

    def send_all(self, now_ms: int, first_msg_id: int = 1) -> list[tuple[int, bytes]]:
        """Publish what may go now (and PUBACK it): [(seq, payload)]."""
        sent, msg_id = [], first_msg_id
        while (item := self.next_to_send(now_ms)) is not None:
            msg, payload = item
            self.publish(int(msg.seq), msg_id, now_ms)
            self.puback(msg_id)
            sent.append((int(msg.seq), payload))
            msg_id += 1
        return sent
