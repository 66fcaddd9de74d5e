"""Settings of the CLI process (environment prefix `EDGEFLEET_`)."""

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="ignore")

    shared: Path = Path("../shared")
    """Shared datasets and models (EDGEFLEET_SHARED)."""
    home: Path = Path(".edgefleet")
    """Caches and state: trained demo models, downloaded models, device outboxes."""
    log_level: LogLevel = "INFO"
