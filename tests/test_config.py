"""Configuration: secrets, database URLs, the config class chosen by the environment."""

import pytest

from config import Config, ProductionConfig, TestConfig, config_from_environment, database_url
from openduty import create_app
from openduty.extensions import db
from tests import factories


def _config(base, tmp_path, **attrs):
    attrs.setdefault("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'c.db'}")
    return type("C", (base,), attrs)


def test_production_refuses_to_start_without_secret_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENDUTY_INSTANCE", str(tmp_path))
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        create_app(_config(ProductionConfig, tmp_path, SECRET_KEY=None))
    assert not (tmp_path / "secret_key").exists()


def test_embedded_default_generates_the_secret_key_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENDUTY_INSTANCE", str(tmp_path))
    first = create_app(_config(Config, tmp_path, SECRET_KEY=None))
    second = create_app(_config(Config, tmp_path, SECRET_KEY=None))
    key = (tmp_path / "secret_key").read_text().strip()
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key
    assert len(key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_embedded_default_database_is_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENDUTY_INSTANCE", str(tmp_path))
    app = create_app(_config(Config, tmp_path, SQLALCHEMY_DATABASE_URI=None, SECRET_KEY="x"))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'openduty.db'}"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path, monkeypatch):
    from sqlalchemy import text

    monkeypatch.setenv("OPENDUTY_INSTANCE", str(tmp_path))
    app = create_app(_config(Config, tmp_path, SECRET_KEY="x"))
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        db.engine.dispose()


@pytest.mark.parametrize(
    "given, expected",
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("", None),
        (None, None),
    ],
)
def test_database_url_uses_psycopg_3(given, expected):
    assert database_url(given) == expected


def test_config_class_from_environment(monkeypatch):
    monkeypatch.setenv("OPENDUTY_CONFIG", "production")
    assert config_from_environment() is ProductionConfig
    monkeypatch.setenv("OPENDUTY_CONFIG", "test")
    assert config_from_environment() is TestConfig
    monkeypatch.setenv("OPENDUTY_CONFIG", "staging")
    with pytest.raises(RuntimeError, match="must be one of"):
        config_from_environment()


def test_htmx_requests_need_the_csrf_header(client, auth, app):

    factories.make_user(email="alice@example.com")
    auth.login("alice@example.com")
    response = client.post("/profile", data={"name": "Mallory"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
