"""Run the Alembic migrations from code: the CLI, the service and the tests all upgrade the same way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db.embedded import normalise_url, run_blocking


def find_alembic_ini() -> Path:
    """alembic.ini beside the app package (a source checkout or editable install), else in the cwd."""
    candidates = [Path(__file__).resolve().parents[2] / "alembic.ini", Path.cwd() / "alembic.ini"]
    for path in candidates:
        if path.is_file() and (path.parent / "migrations" / "env.py").is_file():
            return path
    raise FileNotFoundError(
        "alembic.ini with migrations/ not found in " + " or ".join(str(p.parent) for p in candidates)
    )


def alembic_config(url: str) -> Config:
    ini = find_alembic_ini()
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    # The ini file's interpolation treats % as special; URLs carry %-escapes (passwords, socket paths).
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def run_migrations(url: str, revision: str = "head") -> None:
    """alembic upgrade to `revision` on url; safe to call from inside a running event loop (it blocks it)."""
    config = alembic_config(url)
    run_blocking(lambda: command.upgrade(config, revision))


def downgrade_migrations(url: str, revision: str = "base") -> None:
    config = alembic_config(url)
    run_blocking(lambda: command.downgrade(config, revision))
