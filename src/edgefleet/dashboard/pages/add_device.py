"""Add device: name and kind -> the one-time claim token and the provisioning QR code."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefleet.contracts.provisioning import ProvisioningError
from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.layout import frame, stamp
from edgefleet.dashboard.provisioning_qr import provisioning_png
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.schemas import DeviceCreate, DevicePublic


def register(context: ServerContext) -> None:
    @ui.page("/devices/new")
    async def add_device_page(request: Request) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        base_url = str(request.base_url).rstrip("/")
        _render(context, viewer, base_url)
        return None


def _render(context: ServerContext, viewer: Viewer, base_url: str) -> None:
    from edgefleet.server.services import devices

    with frame(viewer, "Add device"):
        if not viewer.can("admin"):
            ui.label("Adding devices needs the admin role; ask an owner.").classes("ef-muted").props(
                'data-testid="need-admin"'
            )
            return
        with ui.card().classes("w-full max-w-xl p-4 gap-3"):
            device_id = (
                ui.input("Device id", placeholder="press-line-3").props("outlined dense").classes("w-full")
            )
            device_id.props('data-testid="new-device-id"')
            name = ui.input("Name", placeholder="Press, line 3").props("outlined dense").classes("w-full")
            name.props('data-testid="new-device-name"')
            kinds = {"vibration": "vibration sensor", "camera": "camera node"}
            kind = ui.select(kinds, value="vibration", label="Kind")
            kind.props("outlined dense").classes("w-full").props('data-testid="new-device-kind"')
            add = (
                ui.button("Add device", icon="add")
                .props("unelevated no-caps")
                .props('data-testid="add-device"')
            )
        result = ui.column().classes("w-full max-w-xl gap-3")

    async def submit() -> None:
        try:
            create = DeviceCreate(
                id=(device_id.value or "").strip(), name=name.value or None, kind=kind.value
            )
        except ValidationError as err:
            ui.notify(f"{err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}", type="negative")
            return

        def work(session: Session) -> tuple[DevicePublic, str, str]:
            device, token = devices.add_device(
                session, principal_of(session, viewer), create, context.settings.claim_token_ttl_s
            )
            return DevicePublic.model_validate(device), token, stamp(device.claim_expires_at)

        try:
            device, token, expires = await in_db(context, work)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        context.devices_changed()
        result.clear()
        with result:
            _claim_panel(device, token, expires, base_url)

    add.on_click(submit)


def _claim_panel(device: DevicePublic, token: str, expires: str, base_url: str) -> None:
    with ui.card().classes("w-full p-4 gap-2"):
        ui.label(f"{device.name} ({device.id}) added").classes("font-semibold")
        ui.label("One-time claim token (shown once; the device exchanges it for its credentials):")
        ui.label(token).classes("ef-mono text-sm ef-highlight p-2 rounded break-all").props(
            'data-testid="claim-token"'
        )
        ui.label(f"expires {expires} UTC").classes("text-xs ef-muted")
    with ui.card().classes("w-full p-4 gap-2"):
        ui.label("Provisioning QR code").classes("font-semibold")
        ui.label(
            "Type the Wi-Fi the device should join, then hold the code in front of the camera node."
        ).classes("text-sm ef-muted")
        ssid = (
            ui.input("Wi-Fi name (SSID)")
            .props("outlined dense")
            .classes("w-full")
            .props('data-testid="wifi-ssid"')
        )
        networks = {"WPA": "WPA/WPA2", "WEP": "WEP", "nopass": "open network"}
        security = ui.select(networks, value="WPA", label="Wi-Fi security")
        security.props("outlined dense").classes("w-full")
        password = ui.input("Wi-Fi password", password=True, password_toggle_button=True).props(
            "outlined dense"
        )
        password.classes("w-full").props('data-testid="wifi-password"')
        server = (
            ui.input("Server URL", value=base_url)
            .props("outlined dense")
            .classes("w-full")
            .props('data-testid="server-url"')
        )
        image_box = ui.column().classes("items-center w-full")

        def render() -> None:
            image_box.clear()
            try:
                png = provisioning_png(
                    ssid=ssid.value or "",
                    passphrase=password.value or "",
                    security=security.value,
                    server_url=server.value or "",
                    device_id=device.id,
                    claim_token=token,
                )
            except ProvisioningError as err:
                ui.notify(str(err), type="negative")
                return
            with image_box:
                ui.image(png).classes("w-full max-w-xs").props('alt="provisioning QR code"').props(
                    'data-testid="provisioning-qr"'
                )
                ui.label(
                    "The code holds the Wi-Fi password and the claim token: treat it as a secret."
                ).classes("text-xs ef-muted")

        ui.button("Show QR code", icon="qr_code", on_click=render).props("unelevated no-caps").props(
            'data-testid="show-qr"'
        )
