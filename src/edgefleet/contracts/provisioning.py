"""The provisioning payload: standard Wi-Fi QR fields plus the edgefleet extension.

Form (one line, fields end with `;`, the payload with `;;`):

    WIFI:T:WPA;S:<ssid>;P:<pass>;H:false;EFV:1;EFU:<server url>;EFD:<device id>;EFC:<claim token>;;

`T`, `S`, `P`, `H` are the de-facto standard that phone cameras understand (the ZXing "WIFI:"
format): a phone can join the network from the same code. In values, `\\`, `;`, `,`, `:` and `"`
are escaped with a backslash. The edgefleet extension adds `EFV` (extension version, 1), `EFU`
(server base URL), `EFD` (the device id the server assigned) and `EFC` (its one-time claim
token). Phone parsers ignore unknown fields; the keys are chosen not to end in a standard key
letter, so prefix-matching parsers do not confuse them.
"""

import re
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.contracts.errors import ContractError
from edgefleet.contracts.topics import is_valid_device_id

Security = Literal["WPA", "WEP", "nopass"]
EXTENSION_VERSION: Final = 1
_SPECIAL = '\\;,:"'
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_URL_RE = re.compile(r"^https?://[^\s]{1,500}$")
MAX_SSID_BYTES: Final = 32


class ProvisioningError(ContractError):
    """A QR payload that is not a valid edgefleet provisioning code; `reason` says which way."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ProvisioningPayload:
    ssid: str
    passphrase: str
    security: Security
    server_url: str
    device_id: str
    claim_token: str
    hidden: bool = False

    def __post_init__(self) -> None:
        _validate(self)


def escape(value: str) -> str:
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in value)


def encode_payload(payload: ProvisioningPayload) -> str:
    fields = [
        ("T", payload.security),
        ("S", payload.ssid),
        ("P", payload.passphrase if payload.security != "nopass" else ""),
        ("H", "true" if payload.hidden else "false"),
        ("EFV", str(EXTENSION_VERSION)),
        ("EFU", payload.server_url),
        ("EFD", payload.device_id),
        ("EFC", payload.claim_token),
    ]
    return "WIFI:" + "".join(f"{key}:{escape(value)};" for key, value in fields) + ";"


def _parse_fields(body: str) -> list[tuple[str, str]]:
    """`K:v;K:v;;` -> [(K, v), ...]; values unescaped, keys up to the first unescaped `:`."""
    fields: list[tuple[str, str]] = []
    key: str | None = None
    current: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise ProvisioningError("truncated", "the code ends inside an escape sequence")
            current.append(body[i + 1])
            i += 2
            continue
        if ch == ":" and key is None:
            key, current = "".join(current), []
        elif ch == ";":
            if key is None:
                if not current and body[i:] == ";":
                    return fields
                raise ProvisioningError("malformed", f"field {''.join(current)!r} is not KEY:value")
            fields.append((key, "".join(current)))
            key, current = None, []
        else:
            current.append(ch)
        i += 1
    raise ProvisioningError("truncated", "the code is truncated (it does not end with ';;')")


def decode_payload(text: str) -> ProvisioningPayload:
    """Parse and validate a scanned QR text, or raise ProvisioningError with a reason."""
    if not text.startswith("WIFI:"):
        raise ProvisioningError("foreign", "not a Wi-Fi provisioning code (it does not start with 'WIFI:')")
    values: dict[str, str] = {}
    for key, value in _parse_fields(text[len("WIFI:") :]):
        if key in values:
            raise ProvisioningError("malformed", f"field {key!r} appears twice")
        values[key] = value
    if "EFV" not in values:
        raise ProvisioningError(
            "foreign", "a plain Wi-Fi code without the edgefleet extension (EFV/EFU/EFD/EFC)"
        )
    if values["EFV"] != str(EXTENSION_VERSION):
        raise ProvisioningError("version", f"edgefleet extension version {values['EFV']!r} is not supported")
    missing = [k for k in ("T", "S", "EFU", "EFD", "EFC") if k not in values]
    if missing:
        raise ProvisioningError("malformed", f"missing field(s): {', '.join(missing)}")
    security = values["T"]
    if security not in ("WPA", "WEP", "nopass"):
        raise ProvisioningError("malformed", f"unknown security type {security!r} (WPA, WEP or nopass)")
    hidden = values.get("H", "false").lower()
    if hidden not in ("true", "false"):
        raise ProvisioningError("malformed", f"H must be true or false, not {hidden!r}")
    return ProvisioningPayload(
        ssid=values["S"],
        passphrase=values.get("P", ""),
        security=security,  # type: ignore[arg-type]  # checked above
        server_url=values["EFU"],
        device_id=values["EFD"],
        claim_token=values["EFC"],
        hidden=hidden == "true",
    )


def _validate(payload: ProvisioningPayload) -> None:
    ssid_bytes = len(payload.ssid.encode())
    if not 1 <= ssid_bytes <= MAX_SSID_BYTES:
        raise ProvisioningError("invalid", f"SSID must be 1-{MAX_SSID_BYTES} bytes, got {ssid_bytes}")
    if payload.security == "WPA" and not 8 <= len(payload.passphrase) <= 63:
        raise ProvisioningError("invalid", "a WPA passphrase must be 8-63 characters")
    if payload.security == "WEP" and len(payload.passphrase) not in (5, 10, 13, 26):
        raise ProvisioningError("invalid", "a WEP key must be 5 or 13 characters (or 10 or 26 hex digits)")
    if not _URL_RE.match(payload.server_url):
        raise ProvisioningError("invalid", f"server URL {payload.server_url!r} must be http(s)://...")
    if not is_valid_device_id(payload.device_id):
        raise ProvisioningError(
            "invalid", f"device id {payload.device_id!r} is not a valid edgefleet device id"
        )
    if not _TOKEN_RE.match(payload.claim_token):
        raise ProvisioningError("invalid", "the claim token must be 8-128 characters of A-Z a-z 0-9 _ -")
