"""A simulated fleet: many devices in one process, each with its own connection, outbox and clock."""
