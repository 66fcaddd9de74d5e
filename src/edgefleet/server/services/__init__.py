"""Business logic on a SQLAlchemy session; routes and ingest call these, never the other way round."""
