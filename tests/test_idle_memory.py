"""Idle memory (issue 11): the web app and the worker do not load what only some commands or pages
use (alembic for `flask db`, ldap3 for directory logins, pygal for the reports' charts), and
`flask db ...` works as it did when Flask-Migrate was bound with the app."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASK = [sys.executable, "-m", "flask", "--app", "app"]
LOADED_ON_DEMAND = ("alembic", "flask_migrate", "ldap3", "pygal")

# What run-all's two processes do at start and while idle: build the app (with its commands), answer
# pages, and run the worker with its scheduler; then which of LOADED_ON_DEMAND got imported.
SERVE_AND_WORK = f"""
import sys
from app import app
from openduty.worker import make_worker

client = app.test_client()
assert client.get("/healthz").status_code == 200
assert client.get("/login").status_code == 200
make_worker(app).work(burst=True, with_scheduler=True)
print(sorted(name for name in {LOADED_ON_DEMAND!r} if name in sys.modules))
"""


def _env(tmp_path, **settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "OPENDUTY_INSTANCE": str(tmp_path), **settings}


def test_serving_and_working_load_no_migrations_directory_or_charts(app, tmp_path):
    env = _env(tmp_path, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"])
    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_WORK], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_flask_db_commands_migrate_as_before(tmp_path):
    env = _env(tmp_path)

    def flask_db(*args: str) -> str:
        result = subprocess.run([*FLASK, "db", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    usage = flask_db("--help")
    assert "upgrade" in usage and "--directory" in usage
    flask_db("upgrade")
    head = flask_db("heads").split()[0]
    assert flask_db("current").split()[:2] == [head, "(head)"]
    assert flask_db("-d", os.path.join(ROOT, "migrations"), "current").split()[0] == head
    flask_db("downgrade", "head-1")
    assert head not in flask_db("current")
    unknown = subprocess.run([*FLASK, "db", "nonsense"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert unknown.returncode == 2 and "No such command 'nonsense'" in unknown.stderr
