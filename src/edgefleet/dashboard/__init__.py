"""The web dashboard: NiceGUI pages mounted on the server's FastAPI app."""

from edgefleet.dashboard.mount import create_dashboard_app, mount_dashboard

__all__ = ["create_dashboard_app", "mount_dashboard"]
