import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.edge.provisioning import ProvisioningError, ProvisioningPayload, decode_payload, encode_payload

TOKEN = "claim_Token-0123456789"


def make(**overrides: object) -> ProvisioningPayload:
    fields: dict[str, object] = {
        "ssid": "plant-floor",
        "passphrase": "correct horse",
        "security": "WPA",
        "server_url": "http://192.0.2.10:8000",
        "device_id": "cam-01",
        "claim_token": TOKEN,
    }
    fields.update(overrides)
    return ProvisioningPayload(**fields)  # type: ignore[arg-type]


def test_encoding_is_the_standard_wifi_form_plus_the_extension() -> None:
    assert encode_payload(make()) == (
        "WIFI:T:WPA;S:plant-floor;P:correct horse;H:false;EFV:1;EFU:http\\://192.0.2.10\\:8000;"
        f"EFD:cam-01;EFC:{TOKEN};;"
    )


@pytest.mark.parametrize(
    ("ssid", "passphrase", "escaped"),
    [
        ("a;b", "pass;word", "S:a\\;b;P:pass\\;word;"),
        ("a,b", "pass,word", "S:a\\,b;P:pass\\,word;"),
        ("a:b", "pass:word", "S:a\\:b;P:pass\\:word;"),
        ("a\\b", "pass\\word", "S:a\\\\b;P:pass\\\\word;"),
        ('"quoted"', 'say "hi" ok', 'S:\\"quoted\\";P:say \\"hi\\" ok;'),
        ("Café ☕", "ünïcödé-pass", "S:Café ☕;P:ünïcödé-pass;"),
    ],
)
def test_special_characters_are_escaped_and_restored(ssid: str, passphrase: str, escaped: str) -> None:
    payload = make(ssid=ssid, passphrase=passphrase)
    text = encode_payload(payload)
    assert escaped in text
    assert decode_payload(text) == payload


def test_open_network_and_hidden_flag() -> None:
    payload = make(security="nopass", passphrase="", hidden=True)
    assert decode_payload(encode_payload(payload)) == payload


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@settings(max_examples=300)
@given(
    printable.filter(lambda s: len(s.encode()) <= 32),
    st.text(min_size=8, max_size=63).filter(lambda s: "\x00" not in s),
)
def test_any_ssid_and_passphrase_round_trip(ssid: str, passphrase: str) -> None:
    payload = make(ssid=ssid, passphrase=passphrase)
    assert decode_payload(encode_payload(payload)) == payload


@settings(max_examples=200)
@given(st.data())
def test_every_truncation_is_rejected_as_truncated(data: st.DataObject) -> None:
    text = encode_payload(make(ssid="a;b:c", passphrase="p\\a,s;s:word"))
    cut = data.draw(st.integers(min_value=len("WIFI:"), max_value=len(text) - 1))
    with pytest.raises(ProvisioningError) as info:
        decode_payload(text[:cut])
    assert info.value.reason in ("truncated", "malformed")


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_arbitrary_text_is_valid_or_a_provisioning_error(text: str) -> None:
    try:
        decode_payload(text)
    except ProvisioningError as err:
        assert err.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("https://example.com/not-a-wifi-code", "foreign"),
        ("WIFI:T:WPA;S:home;P:12345678;;", "foreign"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:2;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";;", "version"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:1;EFD:d1;EFC:" + TOKEN + ";;", "malformed"),
        ("WIFI:T:WPA3;S:home;P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";;", "malformed"),
        ("WIFI:T:WPA;S:home;S:again;P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";;", "malformed"),
        ("WIFI:T:WPA;S:home;P:short;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";;", "invalid"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:1;EFU:ftp\\://x;EFD:d1;EFC:" + TOKEN + ";;", "invalid"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:1;EFU:http\\://x;EFD:bad/id;EFC:" + TOKEN + ";;", "invalid"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:tiny;;", "invalid"),
        ("WIFI:T:WPA;S:home;P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";", "truncated"),
        ("WIFI:T:WPA;S:home\\", "truncated"),
        ("WIFI:T:WPA;garbage;;", "malformed"),
        (
            "WIFI:T:WPA;S:" + "x" * 33 + ";P:12345678;EFV:1;EFU:http\\://x;EFD:d1;EFC:" + TOKEN + ";;",
            "invalid",
        ),
    ],
)
def test_rejections_say_why(text: str, reason: str) -> None:
    with pytest.raises(ProvisioningError) as info:
        decode_payload(text)
    assert info.value.reason == reason
