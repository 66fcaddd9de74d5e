"""A device for the OTA core's host tests: one boot of ef_ota over a `Storage`, its reports collected
(lost while the power is off), the slot's model loaded into the TFLM interpreter and self-tested."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from edgefleet.contracts import OtaState
from tests.ml.firmware.ota_c import (
    CONFIRMED,
    ERASE_FN,
    FACTORY,
    HTTP_GET,
    INVOKE,
    JOURNAL_LOAD,
    JOURNAL_SAVE,
    RELOAD,
    REPORT,
    SLEEP,
    SLOT_MAP,
    SLOT_SIZE,
    SLOT_SIZE_FN,
    SLOT_WRITE,
    Config,
    Key,
    Platform,
    Report,
    Server,
    Storage,
    format_state,
    parse_cmd,
)


def tflm_run(model: bytes, x: list[int]) -> list[int]:
    """The model's int8 output from the TFLM interpreter (raises on a model that does not load)."""
    from tests.support.tiny_tflite import run

    return run(model, x)


@dataclass
class Profile:
    """What the device is and trusts (ef_ota_config_t)."""

    keys: list[tuple[str, bytes]]
    factory: tuple[str, str] = ("tiny-ae", "0.0.1")
    kind: str = "vibration"
    task: str = "anomaly_detection"
    axes: tuple[str, ...] = ("ax", "ay", "az")
    units: tuple[str, ...] = ("g", "g", "g")
    rate: float = 200.0
    runtime: str = "1.0.0"
    arena: int = 4096
    require_self_test: bool = True
    allow_downgrade: bool = False
    max_pending_boots: int = 1
    attempts: int = 3
    ack_timeout_ms: int = 30_000
    n_inputs: int = 9


class Device:
    """One boot of the device: the OTA core over `storage`; reports go to `reports` (lost while the
    power is off). `start()` boots, loads the model (the factory's, or the slot's into the TFLM
    interpreter) and runs the pending self-test."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        storage: Storage,
        server: Server,
        profile: Profile,
        reports: list[OtaState],
        device_id: str = "press-7",
    ) -> None:
        self.lib, self.storage, self.server, self.reports, self.device_id = (
            lib,
            storage,
            server,
            reports,
            device_id,
        )
        self.mem = ctypes.create_string_buffer(lib.host_sizeof_ota())
        self.model: bytes | None = None  # the slot's model in use (None: the factory model)
        self.confirmed = 0
        self.slept: list[int] = []
        self.load_error: str | None = None
        self.n_inputs = profile.n_inputs
        self._strings = [s.encode() for s in (*profile.axes, *profile.units)]
        n = len(profile.axes)
        axes, units = (ctypes.c_char_p * n)(*self._strings[:n]), (ctypes.c_char_p * n)(*self._strings[n:])
        self.config = Config(
            device_id.encode(),
            (Key * 4)(*[Key(k.encode(), (ctypes.c_uint8 * 32)(*p)) for k, p in profile.keys]),
            len(profile.keys),
            profile.kind.encode(),
            profile.task.encode(),
            axes,
            units,
            n,
            profile.rate,
            profile.runtime.encode(),
            profile.arena,
            profile.factory[0].encode(),
            profile.factory[1].encode(),
            int(profile.require_self_test),
            int(profile.allow_downgrade),
            profile.max_pending_boots,
            profile.attempts,
            profile.ack_timeout_ms,
            10,
            80,
            1,
        )
        self._keep = (axes, units)
        self._cbs = (
            JOURNAL_LOAD(self._load),
            JOURNAL_SAVE(self._save),
            SLOT_SIZE_FN(lambda _c, _s: SLOT_SIZE),
            ERASE_FN(self._erase),
            SLOT_WRITE(self._write),
            SLOT_MAP(self._map),
            HTTP_GET(self._http),
            SLEEP(lambda _c, ms: self.slept.append(ms)),
            REPORT(self._report),
            CONFIRMED(self._confirmed),
        )
        self.platform = Platform(None, *self._cbs)
        self._invoke = INVOKE(self._run)
        assert lib.ef_ota_init(self.mem, ctypes.byref(self.platform), ctypes.byref(self.config)) == 0

    # -- platform hooks
    def _load(self, _c: object, buf: int, cap: int) -> int:
        data = self.storage.journal
        if data is None or len(data) > cap:
            return 0
        ctypes.memmove(buf, data, len(data))
        return len(data)

    def _save(self, _c: object, data: int, n: int) -> int:
        if not self.storage.persist():
            return -1
        self.storage.journal = ctypes.string_at(data, n)
        return 0

    def _erase(self, _c: object, slot: int, off: int, n: int) -> int:
        assert off % 4096 == 0 and n % 4096 == 0 and off + n <= SLOT_SIZE, (off, n)
        if not self.storage.persist():
            return -1
        ctypes.memset(ctypes.addressof(self.storage.slots[slot]) + off, 0xFF, n)
        return 0

    def _write(self, _c: object, slot: int, off: int, data: int, n: int) -> int:
        assert off + n <= SLOT_SIZE
        if off % 16 or n % 16:  # an encrypted partition programs whole 16-byte blocks only
            return -1  # (an assert would be swallowed by the ctypes callback)
        if not self.storage.persist():
            return -1
        target = self.storage.slots[slot]
        for i, b in enumerate(ctypes.string_at(data, n)):
            target[off + i] &= b  # NOR flash: an unerased byte does not take the new value
        return 0

    def _map(self, _c: object, slot: int) -> int:
        return ctypes.addressof(self.storage.slots[slot])

    def _http(self, _c: object, url: bytes, offset: int, h: int) -> int:
        return self.server.get(url.decode(), offset, h)

    def _report(self, _c: object, report: ctypes._Pointer[Report]) -> None:
        if not self.storage.dead:  # a report after the power cut never reaches the outbox
            self.reports.append(
                format_state(self.lib, report.contents, self.device_id, len(self.reports) + 1)
            )

    def _confirmed(self, _c: object) -> None:
        self.confirmed += 1

    def _run(
        self,
        _c: object,
        x: ctypes._Pointer[ctypes.c_int8],
        n_in: int,
        y: ctypes._Pointer[ctypes.c_int8],
        n_out: int,
    ) -> int:
        assert self.model is not None
        out = tflm_run(self.model, [x[i] for i in range(n_in)])
        if len(out) != n_out:
            return -1
        for i, v in enumerate(out):
            y[i] = v
        return 0

    # -- the device's life
    def start(self, now_ms: int = 0) -> int:
        """Boot to running; RELOAD when the device must restart (a rollback)."""
        slot = self.lib.ef_ota_boot(self.mem)
        ok = 1
        if slot != FACTORY:
            tflite, n = ctypes.POINTER(ctypes.c_uint8)(), ctypes.c_uint32()
            assert (
                self.lib.ef_ota_model(self.mem, slot, ctypes.byref(tflite), ctypes.byref(n), None, None) == 0
            )
            self.model = ctypes.string_at(tflite, n.value)
            try:
                tflm_run(self.model, [0] * self.n_inputs)
            except Exception as err:  # the interpreter refuses a damaged flatbuffer with plain exceptions
                ok, self.load_error = 0, f"{type(err).__name__}"
        rc = self.lib.ef_ota_model_loaded(self.mem, ok, (self.load_error or "").encode(), now_ms)
        if rc == RELOAD:
            return RELOAD
        return int(self.lib.ef_ota_self_test(self.mem, self._invoke, None))

    def command(self, payload: bytes) -> int:
        rc, cmd, err = parse_cmd(self.lib, payload, self.device_id)
        assert rc == 0, err
        if not self.lib.ef_ota_submit(self.mem, ctypes.byref(cmd)):
            return 0
        return int(self.lib.ef_ota_handle(self.mem, ctypes.byref(cmd), payload, len(payload)))

    def submit(self, payload: bytes) -> int:
        rc, cmd, err = parse_cmd(self.lib, payload, self.device_id)
        assert rc == 0, err
        return int(self.lib.ef_ota_submit(self.mem, ctypes.byref(cmd)))

    def resume(self) -> int:
        return int(self.lib.ef_ota_resume(self.mem))

    def acked(self) -> None:
        self.lib.ef_ota_publish_acked(self.mem)

    def tick(self, now_ms: int) -> int:
        return int(self.lib.ef_ota_tick(self.mem, now_ms))

    @property
    def active(self) -> int:
        return int(self.lib.ef_ota_active_slot(self.mem))

    @property
    def pending(self) -> bool:
        return bool(self.lib.ef_ota_pending(self.mem))
