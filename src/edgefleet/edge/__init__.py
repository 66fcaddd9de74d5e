"""The device runtime: sources, guards, inference, decisions, outbox, MQTT link; sim/ runs a fleet."""
