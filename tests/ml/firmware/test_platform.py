"""The ESP-IDF platform layer of the generated projects: secrets, components per ESP-IDF major,
task watchdog, event handlers, TLS, and (where an ESP-IDF tree is at hand) a real-header syntax check.

Without ESP-IDF or the Xtensa toolchain, most checks here read the generated sources: they complement
the compile check of tools/idf_syntax_check.py (run locally against ESP-IDF 5.2 and 6.0 headers; see
docs/firmware.md), they do not replace it. The CMake version logic is evaluated by the real cmake.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgefleet.contracts import load_model_card
from edgefleet.ml.firmware import FirmwareOptions, render_project
from edgefleet.ml.firmware.project import load_model_self_test
from tests.support.services import in_ci

ROOT = Path(__file__).parents[3]
SECRET_WORDS = re.compile(r"passw|secret|token|ssid|psk|credential", re.IGNORECASE)
C_KEYWORDS = {
    "if",
    "for",
    "while",
    "switch",
    "return",
    "sizeof",
    "static_cast",
    "reinterpret_cast",
    "defined",
}
HANDLER_BLOCKING = (
    "vTaskDelay",
    "portMAX_DELAY",
    "xSemaphoreTake",
    "nvs_",
    "esp_wifi_connect",
    "esp_restart",
)


def render(model_dir: Path, options: FirmwareOptions | None = None) -> dict[str, str]:
    card = load_model_card(model_dir / "model_card.json")
    model = (model_dir / "model.tflite").read_bytes()
    files = render_project(card, model, "esp32s3", options, self_test=load_model_self_test(model_dir))
    return {path: data.decode() for path, data in files.items()}


@pytest.fixture(scope="module")
def synth(synth_model: Path) -> dict[str, str]:
    return render(synth_model)


@pytest.fixture(scope="module")
def person(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str] | None:
    """The camera node's project for the shared person model (it shares the platform layer), or None
    where the shared models are absent (under CI they are there: tests/conftest.py `needs`)."""
    from tests.ml.firmware import camparity
    from tests.support.services import shared_dir

    if not (shared_dir() / camparity.PERSON_TFLITE).is_file():
        return None
    return render(camparity.person_model_dir(shared_dir(), tmp_path_factory.mktemp("person")))


def projects(synth: dict[str, str], request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    yield "synthetic", synth
    person = request.getfixturevalue("person")
    if person is not None:
        yield "person", person


def sources(files: dict[str, str]) -> dict[str, str]:
    return {p: t for p, t in files.items() if p.endswith((".c", ".cc", ".h"))}


def function_body(text: str, name: str) -> str:
    """The body of the function `name` defined in `text` (brace-matched), or ""."""
    match = re.search(rf"\b{re.escape(name)}\s*\([^;{{)]*\)\s*(?:const\s*)?\{{", text)
    if match is None:
        return ""
    depth, i = 0, match.end() - 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i : j + 1]
    return ""


# ------------------------------------------------------------------------------------------ secrets
def test_no_secret_is_compiled_into_the_image(synth: dict[str, str]) -> None:
    kconfig = synth["main/Kconfig.projbuild"]
    symbols = re.findall(r"^\s*config (\w+)", kconfig, re.MULTILINE)
    assert symbols and not [s for s in symbols if SECRET_WORDS.search(s)], symbols
    for name in ("EF_WIFI_SSID", "EF_WIFI_PASSWORD", "EF_MQTT_USERNAME", "EF_MQTT_PASSWORD", "EF_DEVICE_ID"):
        assert all(f"CONFIG_{name}" not in text for text in synth.values()), name
    for path in ("sdkconfig.defaults", "sdkconfig.production"):
        assert not SECRET_WORDS.search(re.sub(r"#.*", "", synth[path])), path
    assert synth["main/server_ca.pem"].strip() == ""  # no CA given: the bundle verifies the server
    # where credentials come from instead: NVS, filled by the claim
    assert (
        "ef_credentials_load" in synth["main/ef_mqtt.cc"]
        or "ef_network_wait_ready" in synth["main/ef_mqtt.cc"]
    )
    assert "nvs_get_str(nvs, key" in synth["main/ef_storage.cc"]


def test_a_server_ca_is_embedded_when_given(synth_model: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    files = render(synth_model, FirmwareOptions(server_ca_pem=pem))
    assert files["main/server_ca.pem"].strip() == pem.strip()
    assert 'EMBED_TXTFILES "server_ca.pem"' in files["main/CMakeLists.txt"]
    with pytest.raises(ValueError, match="BEGIN CERTIFICATE"):
        FirmwareOptions(server_ca_pem="not a certificate")


def test_plaintext_is_refused_unless_a_lab_allows_it(synth: dict[str, str]) -> None:
    claim = synth["main/ef_claim.cc"]
    allowed = function_body(claim, "ef_url_allowed")
    assert '"https://"' in allowed and '"mqtts://"' in allowed
    assert allowed.index("#ifdef CONFIG_EF_ALLOW_PLAINTEXT") < allowed.index('"http://"')
    assert "ef_url_allowed(ticket->server_url)" in function_body(claim, "ef_claim_exchange")
    assert "ef_url_allowed(creds.broker_uri)" in synth["main/ef_mqtt.cc"]
    assert (
        "default n"
        in synth["main/Kconfig.projbuild"].split("config EF_ALLOW_PLAINTEXT")[1].split("config ")[0]
    )
    assert "disable_auto_redirect = true" in claim  # the claim token goes nowhere but the named server


def test_production_config_encrypts_nvs_and_flash(synth: dict[str, str]) -> None:
    production = synth["sdkconfig.production"]
    for line in (
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y",
        "CONFIG_NVS_ENCRYPTION=y",
        "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y",
    ):
        assert line in production
    rows = [r.split(",") for r in synth["partitions.csv"].splitlines() if r and not r.startswith("#")]
    table = {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}
    assert table["nvs_keys"][1] == "nvs_keys" and "encrypted" in table["nvs_keys"]
    assert "encrypted" not in table["outbox"]  # the ring clears bits in place
    # model slots: mmap reads decrypt under flash encryption, so what was written must be encrypted
    assert "encrypted" in table["model_a"] and "encrypted" in table["model_b"]
    offsets = sorted((int(v[2], 16), int(v[3], 16), k) for k, v in table.items())
    for (start, size, name), (next_start, _, next_name) in itertools.pairwise(offsets):
        assert start + size <= next_start, f"{name} overlaps {next_name}"
    assert offsets[-1][0] + offsets[-1][1] <= 4 * 1024 * 1024


# ------------------------------------------------------------------------------ ESP-IDF 5.2 .. 6.x
def test_components_are_declared_for_both_esp_idf_majors(synth: dict[str, str]) -> None:
    deps = yaml.safe_load(synth["main/idf_component.yml"])["dependencies"]
    assert deps["idf"] == ">=5.2,<7"
    assert deps["espressif/esp-tflite-micro"].startswith("~1.4")  # not ^: 1.5 does not float in
    assert deps["espressif/mqtt"]["rules"] == [{"if": "idf_version >=6.0"}]
    assert "espressif/network_provisioning" in deps and "espressif/libsodium" in deps
    assert "wifi_provisioning" in synth["CMakeLists.txt"] and "EXCLUDE_COMPONENTS" in synth["CMakeLists.txt"]


@pytest.mark.parametrize(
    ("major", "minor", "drivers", "mqtt"),
    [(5, 2, "driver", "mqtt"), (5, 3, "esp_driver_gpio;esp_driver_i2c", "mqtt"),
     (5, 5, "esp_driver_gpio;esp_driver_i2c", "mqtt"), (6, 0, "esp_driver_gpio;esp_driver_i2c", "")],
)  # fmt: skip
def test_main_requires_what_each_esp_idf_version_has(
    synth: dict[str, str], tmp_path: Path, major: int, minor: int, drivers: str, mqtt: str
) -> None:
    if shutil.which("cmake") is None:  # a tool of the build machines: skip only outside CI
        if in_ci():
            pytest.fail("CI requires cmake to evaluate main/CMakeLists.txt", pytrace=False)
        pytest.skip("needs cmake to evaluate main/CMakeLists.txt")
    cmake = synth["main/CMakeLists.txt"]
    logic = cmake[: cmake.index("idf_component_register(")]  # the version logic, run by the real cmake
    script = tmp_path / "logic.cmake"
    script.write_text(
        f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\n"
        + f"set(CMAKE_CURRENT_LIST_DIR {tmp_path})\n"
        + logic
        + 'message(STATUS "drivers=${EF_DRIVERS}|mqtt=${EF_MQTT}")\n'
    )
    out = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, check=True).stdout
    assert f"drivers={drivers}|mqtt={mqtt}" in out


# ------------------------------------------------------------------------- tasks, handlers, blocking
def task_functions(files: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for path, text in sources(files).items():
        for name in re.findall(r"xTaskCreate(?:PinnedToCore)?\s*\(\s*(\w+)", text):
            found.append((path, name))
    return found


def test_every_task_is_watched_and_fed(synth: dict[str, str], request: pytest.FixtureRequest) -> None:
    for project, files in projects(synth, request):
        tasks = task_functions(files)
        names = {name for _, name in tasks}
        assert {"net_task", "mqtt_task", "ota_task"} < names, (project, tasks)  # the platform's + the node's
        for path, name in tasks:
            text = files[path]
            body = function_body(text, name)
            feeders = {"ef_wdt_feed"} | {
                f for f in re.findall(r"\b(\w+)\s*\(", text) if "ef_wdt_feed()" in function_body(text, f)
            }
            assert body.split("{", 1)[1].lstrip().startswith("ef_wdt_watch_current_task();"), (project, name)
            assert any(re.search(rf"\b{f}\s*\(", body) for f in feeders), (project, name)
            # no unbounded wait in a watched loop
            assert "portMAX_DELAY" not in body, (project, name)


def test_the_claim_never_waits_unbounded_and_the_reset_path_works_throughout(synth: dict[str, str]) -> None:
    net, claim = synth["main/ef_wifi_prov.cc"], synth["main/ef_claim.cc"]
    # every wait is bounded (the old claim waited for an IP forever: wait_bits(kGotIp, 0, ...))
    waits = call_arguments(net, "wait_bits")
    assert len(waits) >= 4 and all(w[1] not in ("0", "0u", "portMAX_DELAY") for w in waits[1:]), waits
    assert "waited < timeout_ms" in function_body(net, "wait_bits")  # 0 means no wait, not forever
    for text in sources(synth).values():
        for arguments in call_arguments(text, "xEventGroupWaitBits"):
            assert "portMAX_DELAY" not in arguments[-1], arguments
    # the claim loop serves the button and reset_network, before each attempt and while it waits
    loop = reachable_body(net, "claim")
    body = function_body(net, "claim")
    for call in ("poll_button()", "reset_if_requested()", "serve_for(backoff_ms)", "wifi_up_for_claim()"):
        assert call in body, call
    assert "esp_wifi_connect()" in function_body(net, "wifi_up_for_claim")  # Wi-Fi reconnects meanwhile
    assert "poll_button()" in function_body(net, "wifi_up_for_claim")
    assert "gpio_get_level" in loop and "esp_restart" in loop
    # repeated failures are reported, retried with a cap, and do not end the reset path
    assert "EF_NET_CLAIM_FAILING" in body and "ESP_LOGE" in body and "kBackoffMaxMs" in body
    assert "EF_NET_CLAIM_FAILING" in synth["main/ef_platform.h"]
    # the HTTP exchange (10 s per step, 30 s watchdog) feeds the watchdog between steps and reads
    exchange = function_body(claim, "ef_claim_exchange")
    assert exchange.count("ef_wdt_feed()") >= 4
    read_loop = exchange[exchange.index("while (length < kResponseMax") :]
    assert read_loop.index("ef_wdt_feed()") < read_loop.index("}")


def call_arguments(text: str, prefix: str) -> list[list[str]]:
    """The arguments of every call to a function whose name starts with `prefix` (top-level commas)."""
    calls = []
    for match in re.finditer(rf"\b{prefix}\w*\(", text):
        depth, args, current = 1, [], ""
        for ch in text[match.end() :]:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                break
            if ch == "," and depth == 1:
                args.append(current.strip())
                current = ""
            else:
                current += ch
        calls.append([*args, current.strip()])
    return calls


def reachable_body(text: str, name: str, depth: int = 2) -> str:
    """The body of `name` and of the functions of the same file it calls (what runs in the handler)."""
    body = function_body(text, name)
    if depth == 0 or not body:
        return body
    called = set(re.findall(r"\b(\w+)\s*\(", body[1:])) - {name, *C_KEYWORDS}
    return body + "".join(reachable_body(text, f, depth - 1) for f in sorted(called))


def handler_names(files: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for text in sources(files).values():
        names |= set(re.findall(r"esp_event_handler_register\([^,]+,[^,]+,\s*(\w+)", text))
        names |= set(re.findall(r"esp_mqtt_client_register_event\([^,]+,[^,]+,\s*(\w+)", text))
        names |= set(re.findall(r"endpoint_register\([^,]+,\s*(\w+)", text))
        names |= set(re.findall(r"\.(?:callback|event_handler)\s*=\s*(\w+);", text))
    return names


def test_event_handlers_never_block(synth: dict[str, str], request: pytest.FixtureRequest) -> None:
    for project, files in projects(synth, request):
        names = handler_names(files)
        assert {"on_event", "on_mqtt", "on_payload", "on_sample_timer"} <= names | {"on_sample_timer"}, names
        for name in names:
            body = "".join(reachable_body(t, name) for t in sources(files).values())
            assert body, (project, name)
            for call in HANDLER_BLOCKING:
                assert call not in body, (project, name, call)
            for arguments in call_arguments(body, "xQueueSend"):
                assert arguments[-1] == "0", (project, name, arguments)  # never wait for room in a handler


def test_mqtt_setup_and_subscriptions_run_in_their_own_task(synth: dict[str, str]) -> None:
    mqtt = synth["main/ef_mqtt.cc"]
    assert "esp_mqtt_client_init" in function_body(mqtt, "start_client")
    assert "start_client(creds)" in function_body(mqtt, "mqtt_task")
    for channel in ("cmd", "ota/cmd", "ack"):
        var = "topic_" + channel.replace("/", "_")
        assert f'ef_topic({var}, sizeof({var}), "{channel}")' in mqtt
    assert "esp_mqtt_client_subscribe_single" in function_body(mqtt, "handle")
    assert "ef_outbox_on_ack_ranges" in function_body(mqtt, "on_ack")
    assert "EF_HEALTH_ACKED" in function_body(mqtt, "on_ack")  # app validity needs an acknowledged publish


def test_the_proof_of_possession_is_drawn_with_the_radio_on(synth: dict[str, str]) -> None:
    net = synth["main/ef_wifi_prov.cc"]
    provision = function_body(net, "provision")
    # esp_random() is a pseudo-random sequence until RF is on (the old PoP was drawn before it)
    assert provision.index("esp_wifi_start()") < provision.index("proof_of_possession(")
    pop = function_body(net, "proof_of_possession")
    assert "esp_fill_random" in pop and "esp_random() %" not in pop  # uniform, not modulo-biased
    assert "bootloader_random_enable(" not in net  # on the ESP32 it takes I2S0, the camera's


def test_expired_and_unreadable_records_cannot_stall_the_outbox(synth: dict[str, str]) -> None:
    mqtt = synth["main/ef_mqtt.cc"]
    handler = function_body(mqtt, "on_mqtt")
    assert re.search(r"case MQTT_EVENT_DELETED:[^;]*post\(kDeleted, event->msg_id", handler)
    handle = function_body(mqtt, "handle")
    deleted = handle[handle.index("case kDeleted:") : handle.index("break;", handle.index("case kDeleted:"))]
    assert "ef_outbox_on_puback(&outbox, item.msg_id)" in deleted  # its window slot is freed
    assert "outbox_lock" in deleted
    send = function_body(mqtt, "send_outbox")
    assert re.search(r"if \(got < 0\) \{\s*skip_unreadable\(got\);", send)
    skip = function_body(mqtt, "skip_unreadable")
    assert "ef_outbox_release" in skip and "EF_OB_GONE" in skip and "++unreadable_dropped" in skip
    assert "+ unreadable_dropped" in function_body(mqtt, "ef_mqtt_outbox_stats")  # reported as dropped


def test_status_is_formatted_in_the_callers_own_buffer(synth: dict[str, str]) -> None:
    # the MQTT task (commands) and the processing task (mode changes) both publish status
    body = function_body(synth["main/ef_messages.cc"], "ef_messages_publish_status")
    assert "char json[" in body and "static char" not in body


def test_app_is_marked_valid_only_after_model_self_test_and_ack(synth: dict[str, str]) -> None:
    client = synth["main/ef_ota_client.cc"]
    check = function_body(client, "check_app_validity")
    assert "EF_HEALTH_ALL" in check and "esp_ota_mark_app_valid_cancel_rollback" in check
    assert synth["main/ef_platform.h"].count(
        "EF_HEALTH_ALL (EF_HEALTH_MODEL_LOADED | EF_HEALTH_SELF_TEST | EF_HEALTH_ACKED)"
    )
    assert "esp_ota_mark_app_invalid_rollback_and_reboot" in function_body(client, "ef_app_health_failed")
    # nothing else marks the app valid (the old firmware did on its first scored window)
    marks = [
        p for p, t in sources(synth).items() if re.search(r"esp_ota_mark_app_valid_cancel_rollback\(\);", t)
    ]
    assert marks == ["main/ef_ota_client.cc"]
    self_test = synth["main/ef_self_test.h"]
    assert int(re.search(r"EF_SELF_TEST_CASES (\d+)", self_test).group(1)) >= 1  # type: ignore[union-attr]


def test_packages_are_verified_with_libsodium_not_legacy_mbedtls(synth: dict[str, str]) -> None:
    client = synth["main/ef_ota_client.cc"]
    assert "crypto_sign_verify_detached(sig, msg, len, pubkey)" in client
    assert "crypto_hash_sha256" in client and "mbedtls_sha256" not in client  # gone in mbedtls 4 (IDF 6)
    assert "same_server(url)" in function_body(client, "http_get")  # the device secret stays home


# --------------------------------------------------------------- real ESP-IDF headers (local only)
@pytest.mark.skipif(
    not os.environ.get("IDF_PATH"), reason="no ESP-IDF tree (IDF_PATH): the check runs locally"
)
def test_generated_sources_compile_against_real_esp_idf_headers(synth_model: Path, tmp_path: Path) -> None:
    """Set IDF_PATH (an ESP-IDF tree with its submodules), EDGEFLEET_IDF_MANAGED (managed components:
    network_provisioning, libsodium, esp-tflite-micro, esp-dsp, and mqtt on 6.x) and
    EDGEFLEET_KCONFIG_PYTHON (a Python with the esp-idf-kconfig that release uses)."""
    from edgefleet.ml.firmware import generate_project

    generate_project(synth_model, "esp32s3", tmp_path / "fw")
    command = [sys.executable, str(ROOT / "tools/idf_syntax_check.py"), "--project", str(tmp_path / "fw")]
    for managed in filter(None, os.environ.get("EDGEFLEET_IDF_MANAGED", "").split(os.pathsep)):
        command += ["--managed", managed]
    command += ["--kconfig-python", os.environ.get("EDGEFLEET_KCONFIG_PYTHON", sys.executable)]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
    report = json.loads(proc.stdout)
    failed = [(r["file"], r["errors"][:5]) for r in report["results"] if not r["ok"]]
    assert proc.returncode == 0 and not failed, failed
    assert report["files"] >= 20 and report["distinct_esp_idf_headers"] > 300
