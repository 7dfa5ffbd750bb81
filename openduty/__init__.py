"""Openduty: a self-hosted incident escalation service."""

import os
import secrets

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix


def _secret_key(app: Flask) -> str:
    """SECRET_KEY from config; in the embedded default, generated once into instance/."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    if app.config.get("REQUIRE_SECRET_KEY"):
        raise RuntimeError("SECRET_KEY must be set in production (OPENDUTY_CONFIG=production).")
    path = os.path.join(app.instance_path, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read().strip()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: write-ahead log (readers never block the writer), foreign keys, wait on locks."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Scripts and styles only from our own files (no inline scripts, no eval). Style attributes stay
# allowed: the calendar positions and colours shifts with them (data, never user-written CSS).
# frame-ancestors: the acknowledge page acts on a bearer token and must not be framed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def _security_headers(response):
    """Headers on every answer: CSP, no sniffing, no framing, no token-bearing Referer off-site."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    config = current_app.config
    if config["BASE_URL"].lower().startswith("https://") and config["HSTS_SECONDS"]:
        headers.setdefault("Strict-Transport-Security", f"max-age={config['HSTS_SECONDS']}")
    return response


def create_app(config_class=None) -> Flask:
    """Build the app: config, extensions, blueprints, CLI and error handlers."""
    from config import config_from_environment  # the factory, not `import openduty`, reads the config

    config_class = config_class or config_from_environment()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = Flask(
        __name__,
        instance_path=os.environ.get("OPENDUTY_INSTANCE") or os.path.join(root, "instance"),
        template_folder=os.path.join(root, "templates"),
        static_folder=os.path.join(root, "static"),
    )
    # "/users" and "/users/", "/schedules" and "/schedules/" are the same page (no 404, no redirect).
    app.url_map.strict_slashes = False
    app.config.from_object(config_class)
    os.makedirs(app.instance_path, exist_ok=True)
    if app.config["BASE_URL"].lower().startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.after_request(_security_headers)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.config["SECRET_KEY"] = _secret_key(app)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "openduty.db")

    # Every process counts its metrics in files under this folder (openduty.metrics); prometheus_client
    # reads the setting once, when first imported: by the imports below, not before. run-all clears
    # the default folder when it starts (its own instance's); whoever sets another one clears it.
    app.config["METRICS_DEFAULT_DIR"] = os.path.join(app.instance_path, "metrics")
    os.makedirs(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", app.config["METRICS_DEFAULT_DIR"]), exist_ok=True)
    from openduty import access, audit, limits, logs, models, outbound  # noqa: F401  (models registers the tables)

    logs.init_app(app)  # first: every later hook's log lines carry the request id

    outbound.parse_networks(app.config.get("OUTBOUND_ALLOWED_NETWORKS"))  # a typo fails at start
    outbound.install()
    audit.install()
    from openduty.extensions import csrf, db, login_manager, migrate, redis  # bound here, created unbound

    limits.register(app)  # before CSRFProtect: its check reads the body
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(root, "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    access.init_app(app)  # before CSRF: who may ask comes before whether the form is fresh
    csrf.init_app(app)
    redis.init_app(app)

    # Views, jobs and commands load when an app is built, so `import openduty.clock` stays light.
    from openduty import errors  # (app factory)
    from openduty.cli import cli  # (app factory)
    from openduty.views import blueprints  # (app factory)

    blueprints.register(app)
    errors.register(app)
    app.cli.add_command(cli)
    return app
