"""Brings a database schema up to date with the packaged alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def sqlalchemy_url(url: str) -> str:
    """Our URLs are driver-neutral; SQLAlchemy needs the psycopg 3 driver named."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def upgrade(url: str) -> None:
    here = Path(__file__).parent / "migrations"
    cfg = Config(str(here / "alembic.ini"))
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    command.upgrade(cfg, "head")
