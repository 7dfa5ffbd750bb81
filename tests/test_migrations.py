"""The migrations build the same schema as the models, on SQLite and on PostgreSQL."""

import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from config import TestConfig, database_url
from openduty import create_app
from openduty.extensions import db


def _fresh_database_uri(tmp_path) -> str:
    url = database_url(os.environ.get("DATABASE_URL"))
    if not url:
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    # A separate PostgreSQL schema so the suite's tables are untouched.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS migrations_check CASCADE"))
        conn.execute(text("CREATE SCHEMA migrations_check"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3Dmigrations_check"


def test_upgrade_builds_the_models_schema(tmp_path):
    uri = _fresh_database_uri(tmp_path)
    config = type("MigrationConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        db.engine.dispose()
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"
