"""The server: app factory, database, security, API, MQTT ingest, embedded broker, alarms."""
