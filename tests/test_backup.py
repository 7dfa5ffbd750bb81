"""`openduty backup PATH`: a consistent copy while writes go on, and restoring it (docs/backup.md).

SQLite: the online backup API, restored by copying the file back. PostgreSQL: pg_dump's custom
format, restored with pg_restore (here into a scratch database beside the test database).
"""

import shutil
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from openduty import backup
from openduty.extensions import db
from openduty.models import Team, User
from tests import factories

PAIRS = "INSERT INTO teams (name, description, created_at) VALUES (:name, '', :at)"


class Writer(threading.Thread):
    """Writes two teams per transaction until stopped: a consistent copy has as many a- as b- teams."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.stop = threading.Event()
        self.written = 0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.engine.begin() as connection:
                    for side in ("a", "b"):
                        at = datetime.now(UTC).replace(tzinfo=None)
                        connection.execute(text(PAIRS), {"name": f"{side}-{self.written}", "at": at})
                self.written += 1
        except Exception as exc:  # the test fails on it below
            self.error = exc
        finally:
            self.engine.dispose()


@pytest.fixture
def writer(app):
    writer = Writer(app.config["SQLALCHEMY_DATABASE_URI"])
    yield writer
    writer.stop.set()
    writer.join(30)
    assert writer.error is None


def _counts(rows) -> tuple[int, int]:
    names = [name for (name,) in rows]
    return sum(n.startswith("a-") for n in names), sum(n.startswith("b-") for n in names)


def _scratch_postgres(url) -> str:
    """A fresh database beside the test database, for restoring into."""
    scratch = f"{url.database}_restore"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}"'))
        connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    admin.dispose()
    return scratch


def _drop_postgres(url, name: str) -> None:
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _restored_rows(app, path: Path) -> tuple[list, object]:
    """The team names of the backup at `path`, read from a restored copy; and the copy's URL."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        copy = sqlite3.connect(path)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = copy.execute("SELECT name FROM teams").fetchall()
        copy.close()
        return rows, None
    scratch = _scratch_postgres(url)
    restore = ["pg_restore", "--no-owner", f"--dbname={scratch}", str(path)]
    options = [f"--host={url.host}", f"--port={url.port or 5432}", f"--username={url.username}"]
    result = subprocess.run([*restore[:2], *options, *restore[2:]], env=backup.pg_env(url), capture_output=True)
    assert result.returncode == 0, result.stderr
    engine = create_engine(url.set(database=scratch))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name FROM teams")).all()
    engine.dispose()
    _drop_postgres(url, scratch)
    return rows, scratch


def test_backups_taken_while_writes_go_on_are_consistent_and_restore(app, runner, writer, tmp_path):
    factories.make_user(email="kept@example.com")
    writer.start()
    while writer.written < 20 and writer.error is None:
        threading.Event().wait(0.01)
    for n in range(3):
        path = tmp_path / f"backup-{n}"
        result = runner.invoke(args=["openduty", "backup", str(path)])
        assert result.exit_code == 0, result.output
        assert "Backed up" in result.output
        assert path.stat().st_mode & 0o777 == 0o600
        rows, _ = _restored_rows(app, path)
        a, b = _counts(rows)
        assert a == b >= 20, "a copy holds whole transactions only"
    writer.stop.set()
    writer.join(30)
    assert writer.error is None and writer.written > a
    assert not list(tmp_path.glob("*.partial"))


def test_sqlite_restore_is_copying_the_file_back(app, runner, tmp_path):
    """docs/backup.md's SQLite restore (on PostgreSQL: pg_restore, checked above into a scratch db)."""
    factories.make_user(email="kept@example.com")
    path = tmp_path / "openduty.db"
    assert runner.invoke(args=["openduty", "backup", str(path)]).exit_code == 0
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    db.session.add(Team(name="after the backup"))
    db.session.commit()
    if url.get_backend_name() != "sqlite":
        rows, scratch = _restored_rows(app, path)
        assert ("after the backup",) not in rows and scratch.endswith("_restore")
        return
    live = Path(url.database)
    db.session.remove()
    db.engine.dispose()  # the app is stopped while its file is replaced
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(path, live)
    assert db.session.scalar(db.select(Team.name)) is None
    assert User.by_email("kept@example.com") is not None


def test_backup_refuses_what_it_cannot_do(app, runner, tmp_path):
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        result = runner.invoke(args=["openduty", "backup", url.database])
        assert result.exit_code != 0 and "That is the live database itself" in result.output
    else:
        result = runner.invoke(args=["openduty", "backup", "--print-command", str(tmp_path / "x.dump")])
        assert result.exit_code == 0 and "pg_dump --format=custom" in result.output
        assert not (tmp_path / "x.dump").exists() and (url.password or "\0") not in result.output
    result = runner.invoke(args=["openduty", "backup", str(tmp_path / "missing" / "dir" / "x")])
    assert result.exit_code != 0 and "No backup made" in result.output
