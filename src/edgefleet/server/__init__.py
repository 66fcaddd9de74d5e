"""The server: app factory, database, security, API, MQTT ingest, embedded broker, alarms."""

from edgefleet.server.app import create_app
from edgefleet.server.errors import ServerError
from edgefleet.server.settings import ServerSettings

__all__ = ["ServerError", "ServerSettings", "create_app"]
