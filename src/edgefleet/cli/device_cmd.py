"""`edgefleet device`: run one device, replay a recording, make provisioning QR codes."""

import json
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli import camera_cmd
from edgefleet.cli.console import console, err_console, fail
from edgefleet.cli.settings import CliSettings

if TYPE_CHECKING:
    from edgefleet.edge.config import DeviceConfig, TrustedKey
    from edgefleet.edge.model import ModelBundle

app = typer.Typer(
    help="Devices: run a device, replay recordings offline, provisioning QR.", no_args_is_help=True
)

ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="Model directory (model.tflite + model_card.json).")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Device config YAML (edge.config.DeviceConfig).")
]


def load_model(path: Path | None) -> "ModelBundle | None":
    from edgefleet.edge.errors import EdgeError
    from edgefleet.edge.model import load_model_dir

    if path is None:
        return None
    try:
        return load_model_dir(path)
    except EdgeError as err:
        fail(str(err))


def build_config(config_path: Path | None, **overrides: Any) -> "DeviceConfig":
    """The YAML config (if any) with CLI overrides; nested keys as `section__key`."""
    from pydantic import ValidationError

    from edgefleet.edge.config import DeviceConfig, load_device_config
    from edgefleet.edge.errors import ConfigError

    flat = {k: v for k, v in overrides.items() if v is not None}
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, name = key.partition("__")
        if name:
            nested.setdefault(section, {})[name] = value
        else:
            nested[key] = value
    try:
        if config_path is not None:
            base = load_device_config(config_path).model_dump(exclude_unset=True)
            for key, value in nested.items():
                if isinstance(value, dict):
                    base[key] = {**base.get(key, {}), **value}
                else:
                    base[key] = value
            nested = base
        return DeviceConfig.model_validate(nested)
    except ConfigError as err:
        fail(str(err))
    except ValidationError as err:
        fail(f"invalid device settings: {err}")


def parse_trust_keys(values: list[str] | None) -> "list[TrustedKey]":
    """`KEY_ID:PUBLIC_KEY_B64` (or just the base64 key; its id is derived) -> trusted keys."""
    from pydantic import ValidationError

    from edgefleet.contracts import ContractError, key_id_for
    from edgefleet.edge.config import TrustedKey

    keys = []
    for value in values or []:
        key_id, sep, public_key = value.partition(":")
        try:
            if not sep:
                key_id, public_key = key_id_for(value), value
            keys.append(TrustedKey(key_id=key_id, public_key=public_key))
        except (ContractError, ValidationError) as err:
            fail(f"--trust-key {value!r}: {err}")
    return keys


def clock_overrides(ntp_servers: list[str] | None, no_ntp: bool) -> dict[str, Any]:
    if no_ntp:
        return {"clock__enabled": False}
    return {"clock__servers": ntp_servers} if ntp_servers else {}


@app.command()
def run(
    *,
    device_id: Annotated[str, typer.Option("--id", help="Device id.")],
    model: ModelOpt = None,
    broker: Annotated[
        str | None, typer.Option(help="mqtt://host:port (default: config or 127.0.0.1:1883).")
    ] = None,
    source: Annotated[
        str, typer.Option(help="synthetic\\[:SEED] | replay:PATH\\[#KEY] | serial:PORT\\[@BAUD]")
    ] = "synthetic",
    faults: Annotated[
        str | None, typer.Option(help="Synthetic faults: FAULT@SECONDS\\[xSEVERITY],...")
    ] = None,
    config: ConfigOpt = None,
    username: Annotated[str | None, typer.Option(envvar="EDGEFLEET_DEVICE_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="EDGEFLEET_DEVICE_PASSWORD")] = None,
    outbox_dir: Annotated[Path | None, typer.Option(help="Outbox directory (default: HOME/outbox).")] = None,
    telemetry_interval: Annotated[
        float | None, typer.Option(help="Seconds between telemetry messages.")
    ] = None,
    commission_windows: Annotated[int | None, typer.Option(help="Learn the baseline over N windows.")] = None,
    ntp_server: Annotated[
        list[str] | None, typer.Option(help="SNTP server host\\[:port] (repeatable).")
    ] = None,
    no_ntp: Annotated[bool, typer.Option(help="Do not ask any time server.")] = False,
    speed: Annotated[float, typer.Option(help="Pace the source at this multiple of real time.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of sensor time.")
    ] = None,
    drain_timeout: Annotated[float, typer.Option(help="At the end, wait this long for the outbox.")] = 10.0,
    backend: Annotated[str | None, typer.Option(help="Inference backend: tflm (default) or int8ref.")] = None,
    ota: Annotated[
        bool | None, typer.Option("--ota/--no-ota", help="Take model updates on ota/cmd (default: on).")
    ] = None,
    ota_dir: Annotated[
        Path | None, typer.Option(help="The device's A/B model slots (default: HOME/ota/ID).")
    ] = None,
    trust_key: Annotated[
        list[str] | None,
        typer.Option(help="Model-signing key to accept: KEY_ID:PUBLIC_KEY_B64 (repeatable)."),
    ] = None,
) -> None:
    """Run one device against a broker until stopped (Ctrl-C) or the source ends.

    With OTA on, the model in the active slot (if an update was installed) runs instead of --model,
    which stays the factory fallback.
    """
    from edgefleet.edge.device import Device
    from edgefleet.edge.errors import EdgeError
    from edgefleet.edge.sources import open_source

    bundle = load_model(model)
    settings = CliSettings()
    cfg = build_config(
        config,
        device_id=device_id,
        mqtt__url=broker,
        mqtt__username=username,
        mqtt__password=password,
        outbox__directory=outbox_dir or (None if config else settings.home / "outbox"),
        telemetry_interval_s=telemetry_interval,
        commissioning__windows=commission_windows,
        backend=backend,
        ota__enabled=ota if ota is not None else (None if config else True),
        ota__directory=ota_dir or (None if config else settings.home / "ota" / device_id),
        **clock_overrides(ntp_server, no_ntp),
    )
    keys = parse_trust_keys(trust_key)
    if keys:
        known = {k.key_id: k for k in [*cfg.ota.trusted_keys, *keys]}
        cfg = cfg.model_copy(
            update={"ota": cfg.ota.model_copy(update={"trusted_keys": list(known.values())})}
        )
    rate = bundle.card.feature_spec.sample_rate_hz if bundle and bundle.card.feature_spec else 200.0
    axes = tuple(bundle.card.sensor.axes) if bundle and bundle.card.sensor else None
    try:
        src = open_source(source, sample_rate_hz=rate, faults=faults, axes=axes)
        device = Device(cfg, bundle, src)
    except EdgeError as err:
        fail(str(err))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err_console.print(f"device [bold]{cfg.device_id}[/] -> {cfg.mqtt.url} (mode {device.mode}); Ctrl-C stops")
    device.start()
    try:
        device.run(stop, speed=speed, max_stream_s=duration)
        if device.link is not None and not stop.is_set():
            # the source ended (a recording) or the duration passed: deliver what is queued first
            deadline = time.monotonic() + drain_timeout
            while device.outbox.depth() and device.link.connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        depth = device.outbox.depth()
        device.close()
    console.print_json(
        json.dumps(
            {
                "device_id": cfg.device_id,
                "windows": device.core.windows_seen,
                "events": len(device.events_created),
                "outbox_depth_at_exit": depth,
                "rejected": dict(device.core.rejects.total),
                "model_id": device.model_id,
                "model_version": device.model_version,
                "ota_slot": device.ota.active_slot if device.ota else None,
            }
        )
    )


@app.command()
def replay(
    *,
    source: Annotated[str, typer.Option(help="replay:PATH\\[#KEY] (csv table, window folder or .npz).")],
    out: Annotated[Path, typer.Option(help="Where to write one JSON line per window, then a summary.")],
    model: ModelOpt = None,
    commission_windows: Annotated[
        int | None, typer.Option(help="Learn the baseline over the first N windows.")
    ] = None,
    config: ConfigOpt = None,
    sample_rate: Annotated[
        float | None, typer.Option(help="Sample rate of the recording (default: the card's).")
    ] = None,
) -> None:
    """Run the device loop offline over a recording and write one decision per window."""
    from edgefleet.edge.errors import EdgeError
    from edgefleet.edge.replay import replay as run_replay
    from edgefleet.edge.sources import open_source

    bundle = load_model(model)
    cfg = build_config(
        config, device_id="replay", commissioning__windows=commission_windows, clock__enabled=False
    )
    spec = bundle.card.feature_spec if bundle else None
    rate = sample_rate or (spec.sample_rate_hz if spec else 200.0)
    axes = tuple(bundle.card.sensor.axes) if bundle and bundle.card.sensor else None
    summary: dict[str, Any] = {}
    try:
        src = open_source(source if ":" in source else f"replay:{source}", sample_rate_hz=rate, axes=axes)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            for record in run_replay(bundle, src, cfg):
                fh.write(json.dumps(record) + "\n")
                summary = record.get("summary", summary)
    except EdgeError as err:
        fail(str(err))
    console.print_json(json.dumps(summary))


app.command("qr")(camera_cmd.qr)
app.command("camera")(camera_cmd.camera)
