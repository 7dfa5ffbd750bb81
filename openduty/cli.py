"""`flask --app app openduty ...` commands."""

import os
import secrets
import signal
import subprocess
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from openduty import validation
from openduty.extensions import db, redis
from openduty.models import ApiToken, User

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
def create_token(email: str, name: str) -> None:
    """Create an API token for a user and print it (it is shown only once)."""
    user = User.by_email(email)
    if user is None:
        _fail(f"No user with email {email}.")
    _, secret = ApiToken.issue(user, name)
    db.session.commit()
    click.echo(secret)


@cli.command("ensure-admin")
def ensure_admin() -> None:
    """Create a first admin if there is none, printing its generated password once."""
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


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Run what is queued, then exit.")
@click.option("--name", default=None, help="Worker name (default: generated).")
def worker(burst: bool, name: str | None) -> None:
    """Run an RQ worker (with the scheduler) for Openduty's queues."""
    from openduty.worker import make_worker

    app = current_app._get_current_object()
    make_worker(app, name=name).work(burst=burst, with_scheduler=True, logging_level="INFO")


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
    from openduty import escalation

    counts = escalation.reconcile()
    click.echo(
        f"Re-armed {counts['escalations']} escalation(s) and {counts['notifications']} notification(s); "
        f"recovered {counts['recovered']} interrupted deliveries."
    )


@cli.command("run-all")
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: current_app.config["PORT"], type=int, show_default="PORT or 5000")
@click.option("--threads", default=8, show_default=True, help="Web threads.")
def run_all(host: str, port: int, threads: int) -> None:
    """Run the web app (gunicorn) and an RQ worker with scheduler together, until stopped.

    Without REDIS_URL this process owns the embedded Redis and hands its socket to both children.
    Ctrl-C or SIGTERM stops all of them cleanly.
    """
    app = current_app._get_current_object()
    env = dict(os.environ, REDIS_URL=redis.url(app))
    root = os.path.dirname(app.root_path)
    web = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "1",
            "--threads", str(threads), "--graceful-timeout", "5", "--no-control-socket",
            "--access-logfile", "-", "app:app",
        ],
        env=env,
        cwd=root,
    )  # fmt: skip
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "openduty", "worker"], env=env, cwd=root
    )
    processes = [web, worker_process]
    stopping = False

    def handle_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    click.echo(f"Openduty is running at http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
    finally:
        _stop(processes)
    failed = [p for p in processes if p.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed and not stopping:
        raise SystemExit(1)
