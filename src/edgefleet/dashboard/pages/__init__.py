"""The dashboard's pages; `register(context)` adds them all to NiceGUI."""

from edgefleet.dashboard.pages import (
    account,
    add_device,
    alarms,
    auth,
    device,
    fleet,
    live,
    models,
    rollouts,
    stats,
)
from edgefleet.server.context import ServerContext


def register(context: ServerContext) -> None:
    # add_device before device: "/devices/new" must not be taken for a device id
    for module in (auth, fleet, add_device, device, live, stats, alarms, models, rollouts, account):
        module.register(context)
