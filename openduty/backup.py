"""Backups of the database (`openduty backup PATH`; restoring is docs/backup.md).

SQLite: an online copy through SQLite's backup API, consistent even while run-all writes (in WAL
mode the copy reads one snapshot and writers do not wait for it), written beside PATH and renamed
into place once checked, so PATH is never half a backup. PostgreSQL: `pg_dump` in its custom
format (restored with `pg_restore`), run when it is on PATH, else the command is returned to run
where it is; the password travels in PGPASSWORD, never on a command line. A backup file is made
readable by its owner only (0600): it holds password hashes and integration keys.
"""

import os
import shlex
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from openduty.extensions import db


class BackupError(Exception):
    """The backup could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    """What was done: `made` when PATH now holds a backup, else `command` is what to run."""

    made: bool
    message: str
    command: list[str] | None = None


def backup(path: str, run_pg_dump: bool = True) -> Backup:
    """Back the app's database up to `path` (see the module's docstring)."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, Path(path))
    if url.get_backend_name() == "postgresql":
        return _postgresql(url, path, run_pg_dump)
    raise BackupError(f"No backup for {url.get_backend_name()} databases; use that database's own tools.")


def _private_file(path: Path) -> None:
    """An empty file only its owner may read: a backup holds password hashes and keys."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite(url: URL, target: Path) -> Backup:
    source_file = url.database
    if not source_file or source_file == ":memory:":
        raise BackupError("The database is in memory: there is no file to back up.")
    if target.exists() and target.resolve() == Path(source_file).resolve():
        raise BackupError("That is the live database itself; give another path.")
    partial = target.with_name(target.name + ".partial")
    _private_file(partial)
    source = sqlite3.connect(source_file, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # all pages in one step: one consistent snapshot
            problem = copy.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            copy.close()
    finally:
        source.close()
    if problem != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"The copy failed its integrity check ({problem}); nothing was written to {target}.")
    os.replace(partial, target)
    size = target.stat().st_size
    return Backup(True, f"Backed up {source_file} to {target} ({size} bytes, integrity ok).")


def pg_dump_command(url: URL, path: str) -> list[str]:
    """The pg_dump command line for `url` (without the password: see pg_env)."""
    command = ["pg_dump", "--format=custom", "--no-owner", f"--file={path}"]
    if url.host:
        command.append(f"--host={url.host}")
    if url.port:
        command.append(f"--port={url.port}")
    if url.username:
        command.append(f"--username={url.username}")
    return [*command, url.database or ""]


def pg_env(url: URL) -> dict[str, str]:
    """The environment pg_dump / pg_restore get: the password in PGPASSWORD when the URL has one."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return env


def _postgresql(url: URL, path: str, run: bool) -> Backup:
    command = pg_dump_command(url, path)
    shown = shlex.join(command)
    if not run or shutil.which("pg_dump") is None:
        why = "" if not run else "pg_dump is not on PATH here; "
        hint = " (with PGPASSWORD set)" if url.password else ""
        return Backup(False, f"{why}run this where it is{hint}:\n  {shown}", command)
    partial = f"{path}.partial"
    _private_file(Path(partial))
    result = subprocess.run(
        [*command[:3], f"--file={partial}", *command[4:]],
        env=pg_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        Path(partial).unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed ({result.returncode}): {result.stderr.strip()[:500]}")
    os.replace(partial, path)
    return Backup(True, f"Backed up with: {shown}\n({Path(path).stat().st_size} bytes; restore with pg_restore).")
