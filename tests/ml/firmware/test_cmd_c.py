"""The generated parsers of the server's `cmd` and `ack` messages (main/ef_cmd.c over ef_wire.c),
compiled on the host, against edgefleet.contracts: the same payloads accepted with the same fields,
malformed ones refused for the same kind of reason, and nothing accepted that the contract refuses."""

import ctypes
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.contracts import (
    MAX_ACK_RANGES,
    Ack,
    Channel,
    Command,
    ContractError,
    DeviceMismatchError,
    PayloadTooLargeError,
    SchemaVersionError,
    decode_topic,
    encode,
    topic_for,
)
from edgefleet.contracts.messages import CommandName
from tests.contracts.samples import TS
from tests.ml.firmware.cbind import needs_cc
from tests.ml.firmware.fleet_c import AckRange
from tests.ml.firmware.fleet_c import Command as CCommand

pytestmark = needs_cc
DEVICE = "press-7"
OK, INVALID, VERSION, MISMATCH, TOO_LARGE = 0, -1, -2, -3, -4
ARG_STR, ARG_INT, ARG_FLOAT, ARG_BOOL = range(4)


@pytest.fixture(scope="module")
def lib(fleet_lib: ctypes.CDLL) -> ctypes.CDLL:
    return fleet_lib


def c_cmd(lib: ctypes.CDLL, payload: bytes) -> tuple[int, CCommand, str]:
    out, err = CCommand(), ctypes.create_string_buffer(160)
    rc = lib.ef_cmd_parse(payload, len(payload), DEVICE.encode(), ctypes.byref(out), err, 160)
    return int(rc), out, err.value.decode()


def c_ack(lib: ctypes.CDLL, payload: bytes) -> tuple[int, list[tuple[int, int]]]:
    ranges, n = (AckRange * MAX_ACK_RANGES)(), ctypes.c_size_t()
    rc = lib.ef_ack_parse(
        payload, len(payload), DEVICE.encode(), ranges, MAX_ACK_RANGES, ctypes.byref(n), None, 0
    )
    return int(rc), [(int(r.lo), int(r.hi)) for r in ranges[: n.value]]


def py_result(channel: Channel, payload: bytes) -> tuple[int, Any]:
    try:
        return OK, decode_topic(topic_for(DEVICE, channel), payload)[1]
    except SchemaVersionError:
        return VERSION, None
    except DeviceMismatchError:
        return MISMATCH, None
    except PayloadTooLargeError:
        return TOO_LARGE, None
    except ContractError:
        return INVALID, None


def c_args(cmd: CCommand) -> dict[str, object]:
    out: dict[str, object] = {}
    for arg in cmd.args[: cmd.n_args]:
        value: object = {ARG_STR: arg.str.decode(), ARG_INT: arg.i, ARG_FLOAT: arg.f, ARG_BOOL: bool(arg.b)}[
            arg.type
        ]
        out[arg.key.decode()] = value
    return out


def assert_same_command(lib: ctypes.CDLL, payload: bytes) -> None:
    expected, message = py_result(Channel.CMD, payload)
    rc, cmd, err = c_cmd(lib, payload)
    assert rc == expected, (payload, err)
    if rc == OK:
        assert isinstance(message, Command)
        assert lib.ef_cmd_name(cmd.command).decode() == message.command
        assert (cmd.device_id.decode(), cmd.command_id.decode()) == (message.device_id, message.command_id)
        got = c_args(cmd)
        assert got == message.args and [type(v) for v in got.values()] == [
            type(v) for v in message.args.values()
        ]


@pytest.mark.parametrize("name", ["recommission", "reset_network", "reboot", "publish_status"])
def test_every_command_of_the_contract_parses_with_its_args(lib: ctypes.CDLL, name: CommandName) -> None:
    args: dict[str, str | int | float | bool] = {
        "windows": 600,
        "reason": 'a "quoted" \\ ünï',
        "ratio": 0.25,
        "force": True,
        "big": -(2**63),
    }
    for a in (args, {}):
        assert_same_command(
            lib, encode(Command(device_id=DEVICE, ts=TS, command_id="c-1_x", command=name, args=a))
        )


BASE = {
    "schema": 1,
    "ts": "2026-11-23T12:00:00.123Z",
    "device_id": DEVICE,
    "command_id": "c1",
    "command": "reboot",
}


@pytest.mark.parametrize(
    "changes",
    [
        {"command": "self_destruct"},
        {"command": 3},
        {"extra": 1},
        {"command_id": "has space"},
        {"command_id": "x" * 65},
        {"command_id": None},
        {"args": {"k": None}},
        {"args": {"k": [1]}},
        {"args": {"k": {"a": 1}}},
        {"args": {"bad/key": 1}},
        {"args": {f"k{i}": i for i in range(17)}},
        {"args": []},
        {"args": {"k": 1e300, "j": 1.5, "z": -0.0}},
        {"ts": "2026-11-23T12:00:00"},
        {"ts": "2026-02-30T12:00:00Z"},
        {"ts": 1700000000},
        {"device_id": "other-1"},
        {"device_id": "bad/id"},
        {"schema": 2},
        {"schema": "1"},
        {"schema": None},
        {"schema": 2, "command": "nope"},
    ],
)
def test_malformed_commands_are_refused_as_the_contract_refuses_them(
    lib: ctypes.CDLL, changes: dict[str, Any]
) -> None:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if not (k == "schema" and v is None)}
    assert_same_command(lib, json.dumps(data).encode())


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"null",
        b"[]",
        b"{",
        b'{"schema":1}',
        b"{}",
        json.dumps(BASE).encode() + b"x",
        json.dumps(BASE).encode()[:-1],
        json.dumps(BASE).replace(":", ": ", 3).encode() + b" \n",
        b'{"schema":1,"schema":1,' + json.dumps(BASE).encode()[1:],  # a repeated key: the last counts
        json.dumps({**BASE, "args": {"s": "x" * 70_000}}).encode(),
        json.dumps({**BASE, "args": {"k": "\ud83d\ude00 ok"}}).encode(),
        b'{"schema":1,"ts":"2026-11-23T12:00:00Z","device_id":"press-7","command_id":"c1","command":"reboot","args":{"k":"\\ud800"}}',
        b'{"schema":1,"ts":"2026-11-23T12:00:00Z","device_id":"press-7","command_id":"c1","command":"reboot","args":{"k":"\xff"}}',
        b'{"schema":1,"ts":"2026-11-23T12:00:00Z","device_id":"press-7","command_id":"c1","command":"reboot","args":{"k":01}}',
    ],
)
def test_malformed_json_is_refused(lib: ctypes.CDLL, payload: bytes) -> None:
    assert_same_command(lib, payload)


mutation = st.tuples(
    st.integers(0, 400), st.sampled_from(["drop", "dup", "flip", "insert"]), st.binary(min_size=1, max_size=3)
)


def mutate(payload: bytes, edits: list[tuple[int, str, bytes]]) -> bytes:
    data = bytearray(payload)
    for at, how, blob in edits:
        i = at % (len(data) or 1)
        if how == "drop":
            del data[i : i + len(blob)]
        elif how == "dup":
            data[i:i] = data[i : i + len(blob)]
        elif how == "flip" and data:
            data[i] ^= blob[0]
        else:
            data[i:i] = blob
    return bytes(data)


SEED_COMMAND = encode(
    Command(
        device_id=DEVICE,
        ts=TS,
        command_id="c1",
        command="recommission",
        args={"windows": 600, "x": "y", "f": 1.5},
    )
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_a_mutated_command_is_accepted_only_if_the_contract_accepts_it(
    lib: ctypes.CDLL, edits: list[Any]
) -> None:
    payload = mutate(SEED_COMMAND, edits)
    rc, _, _ = c_cmd(lib, payload)
    if rc == OK:
        assert_same_command(lib, payload)


@pytest.mark.parametrize(
    "ranges",
    [
        [(1, 3), (7, 7)],
        [(0, 0)],
        [(2**53, 2**53)],
        [(i * 3, i * 3 + 1) for i in range(MAX_ACK_RANGES)],
        [(5, 9), (1, 2)],
    ],
)
def test_acks_of_the_contract_parse_to_the_same_ranges(
    lib: ctypes.CDLL, ranges: list[tuple[int, int]]
) -> None:
    payload = encode(Ack(device_id=DEVICE, ts=TS, ranges=ranges))
    assert c_ack(lib, payload) == (OK, ranges)


@pytest.mark.parametrize(
    "ranges",
    [
        [],
        [[3, 2]],
        [[-1, 2]],
        [[1, 2, 3]],
        [[1]],
        [["1", "2"]],
        [[1, 2]] * (MAX_ACK_RANGES + 1),
        [[1.0, 2]],
        [[0, 2**53 + 1]],
        [[1, 2], None],
        "1-2",
        [[1e2, 200]],
    ],
    ids=[
        "empty",
        "reversed",
        "negative",
        "triple",
        "single",
        "strings",
        "too-many",
        "float",
        "over-2**53",
        "null",
        "string",
        "exponent",
    ],
)
def test_bad_ack_ranges_are_refused(lib: ctypes.CDLL, ranges: object) -> None:
    payload = json.dumps(
        {"schema": 1, "ts": "2026-11-23T12:00:00Z", "device_id": DEVICE, "ranges": ranges}
    ).encode()
    assert py_result(Channel.ACK, payload)[0] == INVALID
    assert c_ack(lib, payload)[0] == INVALID


def test_an_ack_for_another_device_or_schema_is_refused(lib: ctypes.CDLL) -> None:
    other = encode(Ack(device_id="other-1", ts=TS, ranges=[(1, 1)]))
    assert c_ack(lib, other)[0] == MISMATCH == py_result(Channel.ACK, other)[0]
    wrong = json.dumps(
        {"schema": 2, "ts": "2026-11-23T12:00:00Z", "device_id": DEVICE, "ranges": [[1, 1]]}
    ).encode()
    assert c_ack(lib, wrong)[0] == VERSION == py_result(Channel.ACK, wrong)[0]
    assert c_ack(lib, b" " * 70_000)[0] == TOO_LARGE
    small = (AckRange * 1)()
    n = ctypes.c_size_t()
    payload = encode(Ack(device_id=DEVICE, ts=TS, ranges=[(1, 1), (3, 3)]))
    assert (
        lib.ef_ack_parse(payload, len(payload), DEVICE.encode(), small, 1, ctypes.byref(n), None, 0)
        == INVALID
    )


SEED_ACK = encode(Ack(device_id=DEVICE, ts=TS, ranges=[(1, 3), (7, 7), (10, 2**40)]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_a_mutated_ack_is_accepted_only_if_the_contract_accepts_it(
    lib: ctypes.CDLL, edits: list[Any]
) -> None:
    payload = mutate(SEED_ACK, edits)
    rc, ranges = c_ack(lib, payload)
    if rc == OK:
        expected, message = py_result(Channel.ACK, payload)
        assert expected == OK and isinstance(message, Ack) and ranges == [tuple(r) for r in message.ranges]
