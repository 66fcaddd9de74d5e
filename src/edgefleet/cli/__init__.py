"""The `edgefleet` command: parse, call, print."""
