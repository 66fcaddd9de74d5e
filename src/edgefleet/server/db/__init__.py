"""Database: SQLAlchemy 2 models, engines, and the Alembic migrations shipped in the package."""

from edgefleet.server.db.engine import make_engine, make_sessionmaker, transaction
from edgefleet.server.db.migrate import downgrade, upgrade

__all__ = ["downgrade", "make_engine", "make_sessionmaker", "transaction", "upgrade"]
