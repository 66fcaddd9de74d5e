"""The dashboard's pages; `register(context)` adds them all to NiceGUI."""

from edgefleet.dashboard import theme
from edgefleet.dashboard.pages import (
    account,
    add_device,
    alarm_detail,
    alarms,
    auth,
    device,
    fleet,
    live,
    models,
    notifications,
    rollouts,
    stats,
)
from edgefleet.server.context import ServerContext


def register(context: ServerContext) -> None:
    theme.configure_app()
    # add_device before device: "/devices/new" must not be taken for a device id
    pages = (auth, fleet, add_device, device, live, stats, alarms, alarm_detail, models, rollouts, account)
    for module in (*pages, notifications):  # notifications: issue 21
        module.register(context)
