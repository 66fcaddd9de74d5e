"""The generated OTA messages and package checks (main/ef_ota_msg.c, ef_ota_verify.c) against the
contract and the Python agent: `ota/cmd` parsed as contracts.decode parses it (nothing accepted that
it refuses), `ota/state` valid by the contract's JSON schema, and packages refused with the reason
code edge.ota.verify.verify_package gives."""

import base64
import ctypes
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.contracts import Channel, ContractError, OtaCommand, decode_topic, message_schemas, topic_for
from edgefleet.edge.config import TrustedKey
from edgefleet.edge.ota.errors import VerificationError
from edgefleet.edge.ota.verify import DeviceProfile, verify_package
from tests.ml.firmware.ota_c import STATES, Config, Key, Report, format_state, parse_cmd
from tests.ml.firmware.ota_kit import DEVICE, Signer, card, command, manifest, package
from tests.ml.firmware.test_cmd_c import mutate, mutation

SCHEMA = message_schemas()["ota/state"]


@pytest.fixture(scope="module")
def lib(ota_lib: ctypes.CDLL) -> ctypes.CDLL:
    return ota_lib


def python_command(payload: bytes) -> OtaCommand | None:
    try:
        message = decode_topic(topic_for(DEVICE, Channel.OTA_CMD), payload)[1]
    except ContractError:
        return None
    assert isinstance(message, OtaCommand)
    return message


def assert_same(lib: ctypes.CDLL, payload: bytes) -> None:
    expected = python_command(payload)
    rc, cmd, err = parse_cmd(lib, payload, DEVICE)
    assert (rc == 0) == (expected is not None), (payload[:300], err)
    if expected is None:
        return
    assert (cmd.command_id.decode(), ["update", "rollback", "cancel"][cmd.action]) == (
        expected.command_id,
        expected.action,
    )
    assert cmd.rollout_id.decode() == (expected.rollout_id or "") and bool(cmd.has_manifest) == (
        expected.manifest is not None
    )
    m = expected.manifest
    if m is not None:
        c = cmd.manifest
        assert (c.model_id.decode(), c.model_version.decode(), c.url.decode(), c.size) == (
            m.model_id,
            m.model_version,
            m.url,
            m.size,
        )
        assert bytes(c.sha256).hex() == m.sha256 and c.min_runtime_version.decode() == m.min_runtime_version
        signature = base64.b64decode(m.signature)  # only 64 bytes can verify; the length says the rest
        assert c.signature_len == len(signature) and bytes(c.signature)[: len(signature)] == signature[:64]
        assert c.key_id.decode() == (m.key_id or "") and c.n_self_test == len(m.self_test)
        assert (bytes(c.card_sha256).hex() if c.has_card_sha256 else None) == m.model_card_sha256
        if m.self_test:
            listed = json.loads(payload[cmd.self_test_offset : cmd.self_test_offset + cmd.self_test_len])
            assert len(listed) == len(m.self_test)


def test_every_action_of_the_contract_parses(lib: ctypes.CDLL, signer: Signer) -> None:
    pkg = package()
    assert_same(lib, command(manifest(pkg, signer, model_card_sha256="ab" * 32)))
    assert_same(lib, command(manifest(pkg, signer, key_id=None, self_test=[])))
    assert_same(lib, command(None, action="rollback"))
    assert_same(lib, command(None, action="cancel", rollout_id=None))


def base(signer: Signer) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(command(manifest(package(), signer)))
    return data


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("manifest"),
        lambda d: d.update(action="upgrade"),
        lambda d: d.update(rollout_id="bad id"),
        lambda d: d["manifest"].update(sha256="AB" * 32),
        lambda d: d["manifest"].update(size=0),
        lambda d: d["manifest"].update(size=16 * 1024 * 1024 + 1),
        lambda d: d["manifest"].update(url="ftp://x/p"),
        lambda d: d["manifest"].update(url="https://x/a b"),
        lambda d: d["manifest"].update(url="https://x/a\u2003b"),
        lambda d: d["manifest"].update(url="https://x/" + "a" * 510),
        lambda d: d["manifest"].update(signature="***"),
        lambda d: d["manifest"].update(signature=""),
        lambda d: d["manifest"].update(extra=1),
        lambda d: d["manifest"].pop("signature"),
        lambda d: d["manifest"].update(size=1.0),
        lambda d: d["manifest"]["self_test"].extend(d["manifest"]["self_test"] * 3),
        lambda d: d["manifest"]["self_test"][0].update(input_int8=[128]),
        lambda d: d["manifest"]["self_test"][0].update(expected_int8=[0] * 65),
        lambda d: d["manifest"]["self_test"][0].update(tolerance=17),
        lambda d: d["manifest"]["self_test"][0].update(input_int8=[]),
        lambda d: d["manifest"]["self_test"][0].pop("expected_int8"),
        lambda d: d["manifest"].update(key_id=None, model_card_sha256=None),
        lambda d: d.update(schema=2),
        lambda d: d.update(device_id="other-1"),
        lambda d: d.update(manifest=None),
    ],
)
def test_commands_are_accepted_and_refused_as_the_contract_does(
    lib: ctypes.CDLL, signer: Signer, change: Any
) -> None:
    data = base(signer)
    change(data)
    assert_same(lib, json.dumps(data).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_a_mutated_command_is_accepted_only_if_the_contract_accepts_it(
    lib: ctypes.CDLL, signer: Signer, edits: list[Any]
) -> None:
    payload = mutate(command(manifest(package(), signer, self_test=[])), edits)
    if parse_cmd(lib, payload, DEVICE)[0] == 0:
        assert_same(lib, payload)


@pytest.mark.parametrize("state", range(len(STATES)))
def test_ota_state_messages_are_valid_by_the_contract(lib: ctypes.CDLL, state: int) -> None:
    full = Report(
        state, b"rollout-1", b"tiny-ae", b"0.0.2", 1, 1, 0.3, b'sha256_mismatch: a "quoted" \\ reason'
    )
    bare = Report(state, b"", b"", b"", -1, 0, 0.0, b"")
    for report in (full, bare):
        failure = STATES[state] in ("FAILED", "ROLLED_BACK")
        if failure and not report.reason:
            continue  # the contract wants a reason there; the core always gives one
        message = format_state(lib, report, DEVICE, 7)
        jsonschema.validate(json.loads(message.model_dump_json(by_alias=True, exclude_none=True)), SCHEMA)
        assert message.state == STATES[state] and message.seq == 7
        assert (message.active_slot, message.progress) == (("B", 0.3) if report is full else (None, None))


def test_a_long_reason_is_cut_to_the_contracts_limit_and_a_short_buffer_refused(lib: ctypes.CDLL) -> None:
    out = ctypes.create_string_buffer(300)
    lib.ef_ota_reason(out, 300, b"bad_package", ("\u00e9" * 300).encode())
    text = out.value.decode()
    assert len(text.encode()) <= 256 and text.startswith("bad_package: ") and text.endswith("...")
    report = Report(5, b"r", b"m", b"1", -1, 0, 0.0, text.encode())
    assert format_state(lib, report, DEVICE, 1).reason == text
    buf = ctypes.create_string_buffer(40)
    assert (
        lib.ef_ota_format_state(buf, 40, DEVICE.encode(), 1, b"2026-12-01T10:00:00Z", 1, ctypes.byref(report))
        == -1
    )


class Package(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("tflite_offset", "tflite_len", "card_offset", "card_len")]


def c_verify(lib: ctypes.CDLL, signer: Signer, data: bytes, payload: bytes, running: tuple[str, str]) -> str:
    axes, units = (ctypes.c_char_p * 3)(b"ax", b"ay", b"az"), (ctypes.c_char_p * 3)(b"g", b"g", b"g")
    keys = (Key * 4)(Key(signer.key_id.encode(), (ctypes.c_uint8 * 32)(*signer.raw)))
    config = Config(
        DEVICE.encode(),
        keys,
        1,
        b"vibration",
        b"anomaly_detection",
        axes,
        units,
        3,
        200.0,
        b"1.0.0",
        4096,
        None,
        None,
        1,
        0,
        1,
        3,
        30000,
        10,
        80,
        1,
    )
    rc, cmd, err = parse_cmd(lib, payload, DEVICE)
    assert rc == 0, err
    out, reason = Package(), ctypes.create_string_buffer(300)
    r = lib.ef_ota_verify_package(
        ctypes.byref(config),
        ctypes.byref(cmd.manifest),
        data,
        len(data),
        running[0].encode(),
        running[1].encode(),
        ctypes.byref(out),
        reason,
        300,
    )
    return "ok" if r == 0 else reason.value.decode()


def python_verify(signer: Signer, data: bytes, payload: bytes, running: tuple[str, str]) -> str:
    message = python_command(payload)
    assert message is not None and message.manifest is not None
    trusted = [TrustedKey(key_id=signer.key_id, public_key=base64.b64encode(signer.raw).decode())]
    profile = DeviceProfile(
        "vibration", ("ax", "ay", "az"), ("g", "g", "g"), 200.0, "1.0.0", arena_bytes=4096
    )
    try:
        verify_package(data, message.manifest, trusted, profile, running=running)
    except VerificationError as err:
        return err.report
    return "ok"


def code(reason: str) -> str:
    return reason.split(": ", 1)[0]


@pytest.mark.parametrize(
    "case",
    [
        "good",
        "tampered",
        "unknown-key",
        "wrong-key",
        "unsigned",
        "signed-truncated",
        "manifest-mismatch",
        "card-mismatch",
        "older",
        "kind",
        "task",
        "sensor",
        "rate",
        "runtime",
        "card-runtime",
        "io",
        "no-self-test",
        "arena",
        "short",
        "long",
    ],
)
def test_package_refusals_have_the_python_agents_reason_codes(
    lib: ctypes.CDLL, signer: Signer, case: str
) -> None:
    other = Signer()
    running = ("tiny-ae", "0.0.1")
    variants: dict[str, dict[str, Any]] = {
        "kind": {"device_kind": "camera"},
        "task": {"task": "classification"},
        "sensor": {
            "sensor": {
                "axes": ["ax", "ay", "gz"],
                "units": ["g", "g", "g"],
                "range_min": [-2.0] * 3,
                "range_max": [2.0] * 3,
            }
        },
        "rate": {"feature_spec": {**json.loads(card())["feature_spec"], "sample_rate_hz": 100.0}},
        "card-runtime": {"min_runtime_version": "1.0.1"},
        "arena": {"arena_bytes": 8192},
        "io": {"input": {"shape": [1, 4], "dtype": "float32"}},
    }
    changes = variants.get(case, {})
    data = package(**changes)
    m = manifest(data, signer)
    if case == "tampered":
        data = data[:700] + bytes([data[700] ^ 4]) + data[701:]
    elif case == "unknown-key":
        m = manifest(data, other)
    elif case == "wrong-key":
        m = manifest(data, other, key_id=signer.key_id)
    elif case == "unsigned":
        m = manifest(data, signer, signature="")
    elif case == "signed-truncated":
        data = data[: data.index(b"TFL3") + 100]
        m = manifest(data, signer)
    elif case == "manifest-mismatch":
        m = manifest(data, signer, version="0.0.3")
    elif case == "card-mismatch":
        m = manifest(data, signer, model_card_sha256="1" * 64)
    elif case == "older":
        running = ("tiny-ae", "0.0.10")
    elif case == "runtime":
        m = manifest(data, signer, min_runtime_version="1.0.1")
    elif case == "no-self-test":
        m = manifest(data, signer, self_test=[])
    elif case in ("short", "long"):
        data = data[:-1] if case == "short" else data + b"\0"
    payload = command(m)
    expected = python_verify(signer, data, payload, running)
    got = c_verify(lib, signer, data, payload, running)
    assert code(got) == code(expected), (got, expected)
    assert (got == "ok") == (case == "good")
