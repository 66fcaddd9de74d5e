"""The generated QR provisioning parser (main/ef_provision.c), compiled on the host, against the
Python parser (edgefleet.contracts.provisioning): the Python tests' own cases, a round trip of the
Python encoder, and random text, compared field by field and refusal reason by refusal reason."""

import ctypes
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.contracts.provisioning import (
    ProvisioningError,
    ProvisioningPayload,
    decode_payload,
    encode_payload,
)
from tests.edge.provisioning import test_payload as python_tests
from tests.ml.firmware.cbind import needs_cc
from tests.ml.firmware.fleet_c import Provision

pytestmark = needs_cc
SECURITY = ("WPA", "WEP", "nopass")


@pytest.fixture(scope="module")
def lib(fleet_lib: ctypes.CDLL) -> ctypes.CDLL:
    return fleet_lib


def cases_of(test: Any) -> list[Any]:
    """The parametrized cases of one of the Python parser's tests (the very same list)."""
    return list(next(m for m in test.pytestmark if m.name == "parametrize").args[1])


def c_parse(lib: ctypes.CDLL, text: bytes) -> tuple[str, ProvisioningPayload | None]:
    out = Provision()
    code = lib.ef_provision_parse(text, len(text), ctypes.byref(out), None, 0)
    reason = lib.ef_provision_reason(code).decode()
    if code != 0:
        assert ctypes.string_at(ctypes.addressof(out), ctypes.sizeof(out)).count(0) == ctypes.sizeof(out), (
            "cleared"
        )
        return reason, None
    assert out.ssid_len == len(out.ssid) and out.passphrase_len == len(out.passphrase)
    payload = ProvisioningPayload(
        ssid=out.ssid.decode(),
        passphrase=out.passphrase.decode(),
        security=SECURITY[out.security],  # type: ignore[arg-type]
        server_url=out.server_url.decode(),
        device_id=out.device_id.decode(),
        claim_token=out.claim_token.decode(),
        hidden=bool(out.hidden),
    )
    return reason, payload


def py_parse(text: str) -> tuple[str, ProvisioningPayload | None]:
    try:
        return "ok", decode_payload(text)
    except ProvisioningError as err:
        return err.reason, None


def assert_same(lib: ctypes.CDLL, text: str) -> None:
    assert c_parse(lib, text.encode()) == py_parse(text), text


@pytest.mark.parametrize(("text", "reason"), cases_of(python_tests.test_rejections_say_why))
def test_the_python_parsers_refusals_are_the_c_parsers(lib: ctypes.CDLL, text: str, reason: str) -> None:
    assert c_parse(lib, text.encode()) == (reason, None)


@pytest.mark.parametrize(
    ("ssid", "passphrase", "escaped"), cases_of(python_tests.test_special_characters_are_escaped_and_restored)
)
def test_escaped_values_are_restored(lib: ctypes.CDLL, ssid: str, passphrase: str, escaped: str) -> None:
    payload = python_tests.make(ssid=ssid, passphrase=passphrase)
    text = encode_payload(payload)
    assert escaped in text and c_parse(lib, text.encode()) == ("ok", payload)


@pytest.mark.parametrize(
    "payload",
    [
        python_tests.make(),
        python_tests.make(security="nopass", passphrase="", hidden=True),
        python_tests.make(security="WEP", passphrase="abcde"),
        python_tests.make(security="WEP", passphrase="0123456789abcdef0123456789"),
        python_tests.make(server_url="https://fleet.example.com:8443/base?x=1", device_id="A" * 64),
        python_tests.make(claim_token="t" * 128, ssid="s" * 32, passphrase="p" * 63),
        python_tests.make(
            ssid="日本語のネットワーク", passphrase="ü" * 63
        ),  # 30 bytes; 63 characters, 126 bytes
    ],
)
def test_valid_payloads_parse_to_the_same_fields(lib: ctypes.CDLL, payload: ProvisioningPayload) -> None:
    assert c_parse(lib, encode_payload(payload).encode()) == ("ok", payload)


@pytest.mark.parametrize(
    "text",
    [
        "WIFI:;",
        "WIFI:T:WPA;;extra",
        # re.match's `$` also matches before a final newline
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://x\n;EFD:d1;EFC:abcdefgh\n;;",
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://x\n\n;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://a\u2003b;EFD:d1;EFC:abcdefgh;;",  # Unicode space
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://" + "é" * 500 + ";EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://" + "é" * 501 + ";EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:WPA;S:x;P:ab\\cdefgh;H:TRUE;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:WPA;S:x;P:abcdefgh;H:yes;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:WPA;S:x;P:abcdefgh;X:1;X:2;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",  # unknown keys twice
        "WIFI:T:WPA;S:x;P:abcdefgh;E\\FV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",  # an escaped key letter
        "WIFI:S:x;T:WEP;P:abcd;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://x;EFD:.d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:x;EFV:01;EFU:http\\://x;EFD:d1;EFC:abcdefgh;;",
        "WIFI:T:nopass;S:x;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + "a" * 129 + ";;",
        "WIFI:T:WPA;S:a:b;P:c:d:e:f:g:h;EFV:1;EFU:http://x;EFD:d1;EFC:abcdefgh;;",  # unescaped ':' in values
        "WIFI:T:WPA;S:x;P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:abcdefgh;\\;",
    ],
)
def test_corners_agree_with_python(lib: ctypes.CDLL, text: str) -> None:
    assert_same(lib, text)


def test_what_only_c_refuses_nul_bytes_and_bytes_that_are_not_utf8(lib: ctypes.CDLL) -> None:
    good = encode_payload(python_tests.make())
    with_nul = good.replace("plant-floor", "plant\0floor")
    assert py_parse(with_nul)[0] == "ok" and c_parse(lib, with_nul.encode()) == ("malformed", None)
    assert c_parse(lib, good.encode().replace(b"plant", b"pl\xffnt")) == ("malformed", None)
    assert c_parse(lib, (good[:-2] + ";X:" + "y" * 5000 + ";;").encode()) == ("malformed", None)  # over 4 KiB


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    printable.filter(lambda s: len(s.encode()) <= 32),
    st.text(min_size=8, max_size=63).filter(lambda s: "\x00" not in s),
    st.booleans(),
)
def test_any_encoded_payload_round_trips_through_c(
    lib: ctypes.CDLL, ssid: str, passphrase: str, hidden: bool
) -> None:
    payload = python_tests.make(ssid=ssid, passphrase=passphrase, hidden=hidden)
    assert c_parse(lib, encode_payload(payload).encode()) == ("ok", payload)


FIELD_TEXT = st.sampled_from(
    [
        "T",
        "S",
        "P",
        "H",
        "EFV",
        "EFU",
        "EFD",
        "EFC",
        "X",
        "",
        "1",
        "WPA",
        "nopass",
        "true",
        "http\\://x",
        "d1",
        "abcdefgh",
        "12345678",
        "\\;",
        "\\",
        ":",
        ";",
        "é",
        "\u2003",
        "\n",
    ]
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(FIELD_TEXT, st.lists(FIELD_TEXT, max_size=3)), max_size=9),
    st.sampled_from(["", ";", ";;"]),
)
def test_random_field_soups_get_the_same_answer(lib: ctypes.CDLL, fields: list[Any], end: str) -> None:
    assert_same(lib, "WIFI:" + "".join(f"{k}:{''.join(v)};" for k, v in fields) + end)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120).filter(lambda s: "\x00" not in s))
def test_arbitrary_text_gets_the_same_answer(lib: ctypes.CDLL, text: str) -> None:
    assert_same(lib, text)
    assert_same(lib, "WIFI:" + text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_bytes_never_crash_and_what_passes_is_valid_text(lib: ctypes.CDLL, data: bytes) -> None:
    for blob in (
        data,
        b"WIFI:" + data,
        encode_payload(python_tests.make()).encode()[: len(data) % 90] + data,
    ):
        reason, payload = c_parse(lib, blob)
        if reason == "ok":
            assert py_parse(blob.decode()) == ("ok", payload)
