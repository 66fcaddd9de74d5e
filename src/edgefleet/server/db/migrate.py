"""Apply the Alembic migrations shipped inside the package."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from edgefleet.server.errors import DatabaseError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as err:
        raise DatabaseError(f"migrating {engine.url.render_as_string()} failed: {err}") from err


def downgrade(engine: Engine, revision: str) -> None:
    try:
        command.downgrade(alembic_config(engine), revision)
    except SQLAlchemyError as err:
        raise DatabaseError(f"downgrading {engine.url.render_as_string()} failed: {err}") from err
