"""`flask --app app openduty ...` commands."""

import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from openduty import validation
from openduty.extensions import db, redis, stop_embedded_redis
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


class _SchedulerThread(threading.Thread):
    """RQ's scheduler as a thread of `run-all`, instead of a process forked by the worker.

    A forked scheduler is one more resident copy of the app (about 70 MB); a thread costs next to
    nothing. It takes the scheduler locks before the worker starts, so the worker's own
    `with_scheduler` finds them held and forks nothing. It polls like the worker's FastScheduler.
    """

    def __init__(self, app) -> None:
        from openduty.extensions import queues
        from openduty.worker import FastScheduler

        super().__init__(name="rq-scheduler", daemon=True)
        with app.app_context():
            qs = queues()
        self.scheduler = FastScheduler(qs, connection=qs[0].connection)
        self.stopped = threading.Event()
        self.scheduler.acquire_locks()
        self.scheduler.register_birth()

    def run(self) -> None:
        from openduty.worker import SCHEDULER_INTERVAL

        scheduler = self.scheduler
        while not self.stopped.wait(SCHEDULER_INTERVAL):
            try:
                if scheduler.should_reacquire_locks:
                    scheduler.acquire_locks()
                scheduler.heartbeat()
                scheduler.enqueue_scheduled_jobs()
            except Exception:  # a Redis hiccup must not end the scheduler; the next poll retries
                scheduler.log.exception("Scheduler poll failed")
        scheduler.stop()


@cli.command("run-all")
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: current_app.config["PORT"], type=int, show_default="PORT or 5000")
@click.option("--threads", default=8, show_default=True, help="Web threads.")
def run_all(host: str, port: int, threads: int) -> None:
    """Run the web app, the RQ scheduler and an RQ worker together, until stopped.

    This process serves the web app (waitress, `--threads` threads) and runs the scheduler in a
    thread; the worker is a child process. Without REDIS_URL this process owns the embedded
    Redis and hands its socket to the worker. Two processes instead of four (gunicorn's arbiter
    and worker, the RQ worker and its forked scheduler) halve the resident memory; production
    runs gunicorn and `openduty worker` separately. Ctrl-C or SIGTERM stops everything cleanly.
    """
    from waitress.server import create_server

    app = current_app._get_current_object()
    env = dict(os.environ, REDIS_URL=redis.url(app))
    root = os.path.dirname(app.root_path)
    stopping = threading.Event()

    def handle_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    scheduler = _SchedulerThread(app)
    scheduler.start()
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "openduty", "worker"], env=env, cwd=root
    )
    web = create_server(app, host=host, port=port, threads=threads, ident="openduty")
    web_thread = threading.Thread(target=web.run, name="web", daemon=True)
    web_thread.start()
    click.echo(f"Openduty is running at http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        while not stopping.wait(0.2) and worker_process.poll() is None and web_thread.is_alive():
            pass
    finally:
        web.close()  # stop accepting; then let the requests in flight finish
        web.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
        scheduler.stopped.set()
        _stop([worker_process])
        scheduler.join(5)
        stop_embedded_redis()
    if worker_process.returncode not in (0, -signal.SIGTERM, -signal.SIGINT) and not stopping.is_set():
        raise SystemExit(1)
