"""The HTTP API under /api/v1: dependencies in deps.py, one thin module per resource in routes/."""
