"""The generated durable outbox (main/ef_outbox.c) on a simulated NOR flash, compiled on the host.

Records leave only on the server's Ack; a power cut after any single flash write or erase (clean, or
tearing that write) loses nothing stored and brings back nothing whose Ack was written; a full
partition drops the oldest and counts; flash writes per event are bounded; garbage recovers to empty.
"""

import ctypes
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgefleet.contracts import ack_ranges
from tests.ml.firmware.cbind import needs_cc
from tests.ml.firmware.fleet_c import SECTOR, Outbox, SimFlash

pytestmark = needs_cc
CAP = 256


@pytest.fixture(scope="module")
def lib(fleet_lib: ctypes.CDLL) -> ctypes.CDLL:
    return fleet_lib


def event(seq: int, size: int) -> bytes:
    head = b'{"schema":1,"seq":%d,"kind":"anomaly","pad":"' % seq
    return head + bytes(65 + (seq * 7 + i) % 26 for i in range(max(0, size - len(head) - 2))) + b'"}'


def drain(box: Outbox) -> list[tuple[int, bytes]]:
    """Everything the outbox would publish now, oldest first (published, no PUBACK)."""
    out, msg_id = [], 1
    while (item := box.next_to_send(0)) is not None:
        box.publish(int(item[0].seq), msg_id, 0)
        out.append((int(item[0].seq), item[1]))
        msg_id += 1
    return out


def test_crc32_is_zlibs(lib: ctypes.CDLL) -> None:
    for data in (b"", b"a", b"123456789", bytes(range(256)) * 5):
        assert lib.ef_crc32(0, data, len(data)) == zlib.crc32(data)
    assert lib.ef_crc32(lib.ef_crc32(0, b"1234", 4), b"56789", 5) == zlib.crc32(b"123456789")


def test_reboot_keeps_every_record_in_order_with_its_payload_and_the_seq(lib: ctypes.CDLL) -> None:
    flash = SimFlash(8 * SECTOR)
    box = Outbox(lib, flash, cap=CAP)
    sizes = [300, 40, 4090, 9000, 700, 1] + [250] * 20  # 4090 and 9000 span sectors
    payloads = {seq: event(seq, size) for seq, size in enumerate(sizes, start=10)}
    for seq, payload in payloads.items():
        assert box.enqueue(seq, payload) == 0
    again = Outbox(lib, flash, cap=CAP, max_inflight=1000)
    assert again.seqs() == sorted(payloads) and again.next_seq == max(payloads) + 1
    assert drain(again) == sorted(payloads.items())
    assert again.stats()["torn"] == 0
    assert again.enqueue(max(payloads), b"x") == -3, "a seq at or below a stored one is refused"
    assert again.enqueue(100, b"") == -4 and again.enqueue(100, b"x" * 70_000) == -4


def test_seqs_enqueued_out_of_order_by_racing_tasks_are_all_kept_and_sent_in_order(lib: ctypes.CDLL) -> None:
    flash = SimFlash(8 * SECTOR)
    box = Outbox(lib, flash, cap=CAP, max_inflight=1000)
    taken = list(range(1, 41))  # each task took its seq, then formatted: N+1 may arrive before N
    arrival = [seq for pair in zip(taken[1::2], taken[0::2], strict=True) for seq in pair]
    random.Random(7).shuffle(arrival[20:])
    for seq in arrival:
        assert box.enqueue(seq, event(seq, 120)) == 0, seq
    assert box.seqs() == taken and box.next_seq == 41
    assert box.enqueue(7, b"again") == -3, "a seq already queued is refused"
    assert [s for s, _ in drain(box)] == taken
    assert Outbox(lib, flash).seqs() == taken, "a reboot keeps them all"
    box.ack([(1, 10)])
    assert box.enqueue(42, event(42, 120)) == 0 and box.enqueue(41, event(41, 120)) == 0
    assert box.enqueue(10, b"late") == -3, "a seq at or below a freed one would be a duplicate"


def test_erasing_the_partition_for_a_new_identity_leaves_nothing_of_the_old_one(lib: ctypes.CDLL) -> None:
    flash = SimFlash(8 * SECTOR)
    box = Outbox(lib, flash, cap=CAP)
    for seq in range(1, 30):
        assert box.enqueue(seq, event(seq, 900)) == 0
    used = sum(any(b != 0xFF for b in flash.data[i * SECTOR : (i + 1) * SECTOR]) for i in range(8))
    erases = flash.erases
    assert lib.ef_outbox_erase_partition(ctypes.byref(flash.struct), flash.size) == 0
    assert flash.erases - erases == used < 8, "only sectors that hold something are erased"
    fresh = Outbox(lib, flash, cap=CAP)
    assert fresh.depth == 0 and fresh.next_seq == 0 and drain(fresh) == []
    assert fresh.enqueue(1, event(1, 100)) == 0 and Outbox(lib, flash).seqs() == [1]
    erases = flash.erases
    flash.dead = True  # a failing erase is reported
    assert lib.ef_outbox_erase_partition(ctypes.byref(flash.struct), flash.size) == -2
    flash.dead = False
    assert lib.ef_outbox_erase_partition(ctypes.byref(flash.struct), flash.size) == 0
    assert lib.ef_outbox_erase_partition(ctypes.byref(flash.struct), flash.size) == 0
    assert flash.erases - erases == 1, "a blank partition is not erased again"


def test_records_leave_on_the_servers_ack_not_on_puback(lib: ctypes.CDLL) -> None:
    flash = SimFlash(4 * SECTOR)
    box = Outbox(lib, flash)
    for seq in range(1, 6):
        box.enqueue(seq, event(seq, 200))
    assert [s for s, _ in box.send_all(0)] == [1, 2, 3, 4, 5]
    assert box.depth == 5, "PUBACK frees only the in-flight window"
    assert Outbox(lib, flash).seqs() == [1, 2, 3, 4, 5], "a reboot before the Ack loses nothing"
    assert box.ack([(2, 3), (5, 9)]) == 3
    stats = box.stats()
    assert box.seqs() == [1, 4] and stats["acks_unknown"] == 4  # 6..9 were never published
    assert box.ack([(2, 2)]) == 0 and box.stats()["acks_duplicate"] == 1
    assert Outbox(lib, flash).seqs() == [1, 4], "acknowledged records do not come back"


def test_broker_delivery_frees_a_record_on_its_puback(lib: ctypes.CDLL) -> None:
    flash = SimFlash(4 * SECTOR)
    box = Outbox(lib, flash, end_to_end=False)
    for seq in range(1, 4):
        box.enqueue(seq, event(seq, 100))
    box.send_all(0)
    assert box.depth == 0 and Outbox(lib, flash).depth == 0


def test_window_resend_after_the_ack_timeout_with_backoff_and_after_a_reconnect(lib: ctypes.CDLL) -> None:
    box = Outbox(lib, SimFlash(4 * SECTOR), max_inflight=2, ack_timeout_ms=1000, ack_timeout_max_ms=8000)
    for seq in range(1, 4):
        box.enqueue(seq, event(seq, 100))
    first = box.next_to_send(0)
    assert first is not None and first[0].seq == 1 and not first[0].resend
    box.publish(1, 11, 0)
    second = box.next_to_send(0)
    assert second is not None and second[0].seq == 2
    box.publish(2, 12, 0)
    assert box.next_to_send(0) is None, "the window (2) is full until a PUBACK"
    assert box.puback(11) == 1 and box.puback(99) == 0
    third = box.next_to_send(10)
    assert third is not None and third[0].seq == 3
    box.publish(3, 13, 10)
    box.puback(12), box.puback(13)
    assert box.next_to_send(999) is None, "nothing is due before the timeout"
    due = box.next_to_send(1000)
    assert due is not None and due[0].seq == 1 and due[0].resend
    box.send_all(1000, 20)  # 1, 2 and 3 go again: round 1
    rounds = []
    now = 1000
    for _ in range(4):  # no Ack: each round waits between cap/2 and cap, cap doubling up to the maximum
        start = now
        while box.next_to_send(now) is None:
            now += 10
        rounds.append(now - start)
        box.send_all(now, 100 + now)
    assert (
        1000 <= rounds[0] <= 2010 and 2000 <= rounds[1] <= 4010 and all(4000 <= r <= 8010 for r in rounds[2:])
    )
    assert box.ack([(1, 1)]) == 1  # progress: back to the first timeout
    box.send_all(now, 900)
    assert box.next_to_send(now + 999) is None and box.next_to_send(now + 1000) is not None
    box.disconnect()
    assert [s for s, _ in box.send_all(now + 1000, 2000)] == [2, 3], "a reconnect publishes the rest again"
    assert box.stats()["resent"] >= 8 and box.stats()["resend_rounds"] >= 5


def test_a_full_partition_drops_the_oldest_and_counts(lib: ctypes.CDLL) -> None:
    flash = SimFlash(4 * SECTOR)
    box = Outbox(lib, flash)
    for seq in range(1, 201):
        assert box.enqueue(seq, event(seq, 300)) == 0
    seqs, dropped = box.seqs(), box.stats()["dropped"]
    assert dropped > 0 and len(seqs) + dropped == 200 and seqs == list(range(201 - len(seqs), 201))
    assert len(seqs) * 328 > 2.5 * SECTOR, "at least the three sectors not being erased stay full"
    assert Outbox(lib, flash).seqs() == seqs


def test_a_full_index_drops_the_oldest_for_good(lib: ctypes.CDLL) -> None:
    flash = SimFlash(8 * SECTOR)
    box = Outbox(lib, flash, cap=4)
    for seq in range(1, 8):
        box.enqueue(seq, event(seq, 100))
    assert box.seqs() == [4, 5, 6, 7] and box.stats()["dropped"] == 3
    assert Outbox(lib, flash, cap=16).seqs() == [4, 5, 6, 7], "dropped records are marked done on flash"


def test_writes_per_event_are_bounded(lib: ctypes.CDLL) -> None:
    """Steady state: ~350-byte events, the server acknowledging batches of 10."""
    flash = SimFlash(32 * SECTOR)  # the 128 KiB `outbox` partition
    box = Outbox(lib, flash)
    n, before = 3000, None
    for seq in range(1, n + 1):
        if seq == 1001:
            before = box.stats()
        assert box.enqueue(seq, event(seq, 350)) == 0
        if seq % 10 == 0:
            box.send_all(seq)
            box.ack([(seq - 9, seq)])
    assert before is not None
    after = box.stats()
    events = n - 1000
    writes = (after["flash_writes"] - before["flash_writes"]) / events
    erases = (after["flash_erases"] - before["flash_erases"]) / events
    assert after["dropped"] == 0 and box.depth == 0
    # one record write and one state write per event; per sector (~10 records): a header, an erase
    # and one record split over the boundary (two writes)
    assert writes <= 2 + 2.5 / 10 and erases <= 1.05 / 10, (writes, erases)
    assert (after["flash_bytes"] - before["flash_bytes"]) / events < 350 + 28 + 4 + 2


@dataclass
class Model:
    """What the device knew at a point in time."""

    committed: dict[int, bytes] = field(default_factory=dict)  # enqueue returned OK
    done: set[int] = field(default_factory=set)  # state word programmed (acknowledged, or dropped for good)
    dropped: set[int] = field(default_factory=set)  # left the index without an Ack
    doubt: tuple[int, bytes] | None = None  # being enqueued

    def copy(self) -> "Model":
        return Model(dict(self.committed), set(self.done), set(self.dropped), self.doubt)


def record_power_cuts(
    lib: ctypes.CDLL, seed: int
) -> tuple[list[tuple[bytes, bytes, Model, int | None]], int]:
    """Runs enqueue/publish/ack traffic once; after every flash operation keeps the flash (clean cut),
    a torn version of that operation, the model, and the seq a torn state write belongs to."""
    rng = random.Random(seed)
    flash = SimFlash(6 * SECTOR)
    box = Outbox(lib, flash, cap=CAP)
    model, seq_at = Model(), dict[int, int]()  # record address -> the seq written there last
    cuts: list[tuple[bytes, bytes, Model, int | None]] = []
    previous = bytes(flash.data)
    present: set[int] = set()  # in the index when the current call began

    def after_op(kind: str, off: int, data: bytes) -> None:
        nonlocal previous
        torn = bytearray(previous)
        acked = None
        if kind == "write":
            cut = rng.randrange(len(data))
            for i in range(cut):
                torn[off + i] &= data[i]
            torn[off + cut] &= data[cut] | rng.randrange(256)
            if len(data) == 4:
                acked = seq_at.get(off - 4)
                if acked is not None:
                    model.done.add(acked)
        else:
            for i in range(rng.randrange(SECTOR)):
                torn[off + i] = 0xFF
        model.dropped |= present - set(box.seqs()) - model.done  # dropped before the erase that follows
        cuts.append((bytes(flash.data), bytes(torn), model.copy(), acked))
        previous = bytes(flash.data)

    flash.after_op = after_op
    seq = 0
    for _ in range(140):
        seq += rng.choice((1, 1, 1, 2))
        payload = event(seq, rng.choice((120, 300, 600, 1500, 5000)))
        present = set(box.seqs())
        model.doubt = (seq, payload)
        assert box.enqueue(seq, payload) == 0
        model.doubt = None
        model.committed[seq] = payload
        seq_at[box.entries()[-1].addr] = seq
        if rng.random() < 0.5:
            sent = [s for s, _ in box.send_all(seq)]
            if sent:
                box.ack(ack_ranges(rng.sample(sent, rng.randint(1, len(sent)))))
    return cuts, seq


def check_boot(lib: ctypes.CDLL, data: bytes, model: Model, doubt_done: int | None) -> None:
    flash = SimFlash(len(data), bytearray(data))
    box = Outbox(lib, flash, cap=CAP, max_inflight=10_000)
    got = box.seqs()
    allowed = dict(model.committed)
    if model.doubt:
        allowed[model.doubt[0]] = model.doubt[1]
    assert got == sorted(got), "order by seq"
    assert set(got) <= set(allowed), "only what was enqueued"
    assert not set(got) & (model.done - {doubt_done}), "nothing whose Ack was written comes back"
    must = set(model.committed) - model.done - model.dropped - {doubt_done}
    assert must <= set(got), f"lost {sorted(must - set(got))}"
    assert all(allowed[s] == p for s, p in drain(box)), "payloads intact"
    if model.committed:
        assert box.next_seq > max(model.committed)
    seq = box.next_seq
    assert box.enqueue(seq, b"after the reboot") == 0  # the recovered ring takes writes
    assert seq in Outbox(lib, flash, cap=CAP).seqs()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_power_cut_after_any_flash_write_loses_nothing_and_resurrects_no_acked_record(
    lib: ctypes.CDLL, seed: int
) -> None:
    cuts, _ = record_power_cuts(lib, seed)
    assert len(cuts) > 250
    for clean, torn, model, acked in cuts:
        check_boot(lib, clean, model, None)
        model_before = model.copy()
        model_before.done.discard(acked) if acked is not None else None
        check_boot(lib, torn, model_before, acked)


def test_random_bytes_recover_to_empty_and_corruption_never_crashes(lib: ctypes.CDLL) -> None:
    rng = random.Random(5)
    for _ in range(5):
        flash = SimFlash(8 * SECTOR, bytearray(rng.randbytes(8 * SECTOR)))
        box = Outbox(lib, flash)
        assert box.depth == 0 and box.next_seq == 0
        assert box.enqueue(1, b"first") == 0 and Outbox(lib, flash).seqs() == [1]
    flash = SimFlash(8 * SECTOR)
    box = Outbox(lib, flash)
    payloads = {seq: event(seq, rng.choice((200, 900, 5000))) for seq in range(1, 60)}
    for seq, payload in payloads.items():
        box.enqueue(seq, payload)
    good = bytes(flash.data)
    for _ in range(40):  # flipped bytes and smeared sectors: a subset survives, intact and in order
        data = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.3:
            start = rng.randrange(len(data) - 512)
            data[start : start + 512] = rng.randbytes(512)
        again = Outbox(lib, SimFlash(len(data), data), max_inflight=1000)
        sent = drain(again)
        assert [s for s, _ in sent] == sorted(s for s, _ in sent)
        assert all(payloads.get(s) == p for s, p in sent)


def test_recovery_reads_a_real_partition_image(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """The ring's bytes are the format the docs describe: sector header, record header, payload."""
    flash = SimFlash(2 * SECTOR)
    box = Outbox(lib, flash)
    box.enqueue(0x1_0000_0001, b'{"a":1}', tag=3)
    data = bytes(flash.data)
    assert int.from_bytes(data[0:4], "little") == 0xEF0B5EC7 and int.from_bytes(data[4:8], "little") == 1
    assert zlib.crc32(data[0:12]) == int.from_bytes(data[12:16], "little")
    rec = data[16:]
    assert int.from_bytes(rec[0:4], "little") == 0xEF0B7EC0 and rec[4:8] == b"\xff" * 4
    assert int.from_bytes(rec[8:16], "little") == 0x1_0000_0001 and int.from_bytes(rec[16:20], "little") == 7
    assert rec[20] == 3 and rec[28:35] == b'{"a":1}'
    assert zlib.crc32(rec[0:4] + rec[8:24] + rec[28:35]) == int.from_bytes(rec[24:28], "little")
    (tmp_path / "outbox.bin").write_bytes(data)
    assert Outbox(lib, SimFlash(len(data), bytearray((tmp_path / "outbox.bin").read_bytes()))).seqs() == [
        0x1_0000_0001
    ]
