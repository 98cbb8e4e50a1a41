"""TechBank settings. Everything that differs between machines comes from the
environment (see the README's configuration table); the defaults are the
embedded stack: SQLite, in-process bus, no servers."""

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def kept_secret_key(key_file: Path) -> str:
    """The key in `key_file`, made first if there is none.

    Processes that start together (gunicorn's workers) must all end up with the
    same whole key: each writes a candidate to a temp file of its own (mode
    0600) and hard-links it into place, which fails if the file already exists
    (another process won the race); then every one reads what is there. A
    reader never sees a half-written file, and nobody replaces a key in use.
    """
    if not key_file.exists():
        descriptor, candidate = tempfile.mkstemp(dir=key_file.parent, prefix=f"{key_file.name}.")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as temp:
                temp.write(secrets.token_urlsafe(50))
                temp.flush()
                os.fsync(temp.fileno())
            try:
                os.link(candidate, key_file)
            except FileExistsError:
                pass
        finally:
            os.unlink(candidate)
    key = key_file.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{key_file} is empty: delete it (a new key is made) or set TECHBANK_SECRET_KEY.")
    return key


def _secret_key() -> str:
    """From the environment, else a random key kept beside the database (never in git)."""
    if key := os.environ.get("TECHBANK_SECRET_KEY"):
        return key
    key_file = BASE_DIR / ".secret_key"
    try:
        return kept_secret_key(key_file)
    except OSError as error:
        raise ImproperlyConfigured(
            f"Set TECHBANK_SECRET_KEY: no key in the environment, and {key_file} cannot be kept ({error})."
        ) from None


SECRET_KEY = _secret_key()
DEBUG = env_flag("TECHBANK_DEBUG")
ALLOWED_HOSTS = os.environ.get("TECHBANK_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")
# Behind a TLS-terminating proxy: the origins the admin's forms are posted from
# (e.g. https://bank.example.com), and trust its X-Forwarded-Proto header.
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("TECHBANK_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
if env_flag("TECHBANK_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # HTTPS only: plain HTTP is redirected, and browsers are told (HSTS) not to
    # try it again for this host and its subdomains. Only here, so `make run`
    # keeps serving plain http://127.0.0.1. TECHBANK_HSTS_SECONDS=0 turns HSTS off.
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = int(os.environ.get("TECHBANK_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "eventstore",
    "accounts",
    "projections",
    "entrypoints",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

# The admin's login form: django-axes refuses a username at an address after
# TECHBANK_LOGIN_FAILURE_LIMIT failed logins in a row, for TECHBANK_LOGIN_COOLOFF_MINUTES
# (429). Per username and address together, so nobody can lock a user out from
# elsewhere, and one person's typos do not lock out their whole office.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("TECHBANK_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("TECHBANK_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "entrypoints.drf.authentication.client_address"
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_VERBOSE = False  # no banner on every start; failures and lockouts are still logged

ROOT_URLCONF = "techbank_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "techbank_site.wsgi.application"

# The read database (and, with TECHBANK_EVENT_STORE=sql, the event store).
# SQLite is tuned for concurrent writers: WAL, and every transaction takes the
# write lock up front (IMMEDIATE) so a busy database waits instead of failing.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
# By default each request opens its own connection: a database that hangs then
# costs a request the 5 s connect timeout below and a 503, never a wait on a
# kept connection. Keeping them (TECHBANK_DB_CONN_MAX_AGE seconds, checked before
# reuse) saves the connect, about a tenth of the server's time on MariaDB
# (BENCHMARKS.md, http), at that cost.
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("TECHBANK_DB_CONN_MAX_AGE", "0")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # Tests use a file too: an in-memory shared-cache database locks whole tables.
    # One per test run, so parallel runs on one checkout never share a file.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # MySQL/MariaDB, through mysqlclient (requirements-mysql.txt). Spelled out
    # rather than left to the server's defaults, which vary: 4-byte UTF-8 (names,
    # emoji); READ COMMITTED, so each statement sees what other writers committed
    # (a REPEATABLE READ snapshot would have a retried command reload stale
    # state); strict mode, so bad data is refused instead of truncated. A server
    # that hangs (or a host that drops packets) costs 5 s and an error, not a
    # request that waits until gunicorn kills its worker: the client's default
    # connect timeout is unbounded once the TCP handshake succeeds.
    MYSQL_OPTIONS = {
        "charset": "utf8mb4",
        "isolation_level": "read committed",
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
        "connect_timeout": 5,
    }
    DATABASES["default"]["OPTIONS"] = {**MYSQL_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # The test database compares text byte for byte, as SQLite and PostgreSQL do
    # (the server's default *_ci collation finds "Zoë" when asked for "zoe"); create
    # a real one alike: CREATE DATABASE techbank CHARACTER SET utf8mb4 COLLATE utf8mb4_bin.
    # One per test run, so parallel runs on one server never drop each other's.
    DATABASES["default"]["TEST"] = {
        "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}",
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_bin",
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("TECHBANK_STATIC_ROOT")  # for collectstatic in containers
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous requests 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "entrypoints.drf.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The client's address, for throttling failed sign-ins: REMOTE_ADDR, or behind our
    # TLS proxy the address it forwards (a client's own X-Forwarded-For is never believed).
    "NUM_PROXIES": 1 if env_flag("TECHBANK_BEHIND_TLS_PROXY") else 0,
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["entrypoints.drf.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "entrypoints.drf.renderers.SurrogateSafeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "entrypoints.drf.errors.resource_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TechBank API",
    "DESCRIPTION": (
        "An event-sourced bank back office. `/api/v1/...` keeps the techbank course API "
        "route for route; `/api/accounts/` is the resource API. Authenticate with "
        "`Authorization: Token <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and Swagger UI need a signed-in user (drf-spectacular's default is anyone).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# Which backends the composition root (bootstrap/) builds.
TECHBANK_EVENT_STORE = os.environ.get("TECHBANK_EVENT_STORE", "sql")  # sql | mongo
TECHBANK_MONGO_URL = os.environ.get("TECHBANK_MONGO_URL", "mongodb://localhost:27017/techbank")
TECHBANK_EVENT_BUS = os.environ.get("TECHBANK_EVENT_BUS", "inline")  # inline | kafka
TECHBANK_KAFKA_BOOTSTRAP = os.environ.get("TECHBANK_KAFKA_BOOTSTRAP", "localhost:9092")
TECHBANK_KAFKA_TOPIC = os.environ.get("TECHBANK_KAFKA_TOPIC", "techbank.account-events")
TECHBANK_KAFKA_GROUP = os.environ.get("TECHBANK_KAFKA_GROUP", "techbank-projections")
# How the app's Kafka clients authenticate: PLAINTEXT (none), or SASL_PLAINTEXT / SASL_SSL
# with a mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and a user; docker-compose.yml uses SASL.
TECHBANK_KAFKA_SECURITY_PROTOCOL = os.environ.get("TECHBANK_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
TECHBANK_KAFKA_SASL_MECHANISM = os.environ.get("TECHBANK_KAFKA_SASL_MECHANISM", "PLAIN")
TECHBANK_KAFKA_USERNAME = os.environ.get("TECHBANK_KAFKA_USERNAME", "")
TECHBANK_KAFKA_PASSWORD = os.environ.get("TECHBANK_KAFKA_PASSWORD", "")
# How many messages the projection consumer applies in one read-model transaction.
TECHBANK_PROJECTION_BATCH = int(os.environ.get("TECHBANK_PROJECTION_BATCH", "2000"))
# How many events the relay sends to Kafka before marking them published.
TECHBANK_RELAY_BATCH = int(os.environ.get("TECHBANK_RELAY_BATCH", "500"))
# How long the relay lock outlives its holder's last renewal; longer than the longest send to Kafka (42 s).
TECHBANK_RELAY_LOCK_SECONDS = float(os.environ.get("TECHBANK_RELAY_LOCK_SECONDS", "45"))
# Django's cache holds the counts of failed token sign-ins (entrypoints/drf/authentication.py):
# in each process by default; with TECHBANK_CACHE_URL (redis://host:6379/1) in Redis, shared by
# every process, so the limit holds for the whole site. Short timeouts: a slow Redis must not
# hold sign-ins up (the throttle lets them through when its cache fails).
if TECHBANK_CACHE_URL := os.environ.get("TECHBANK_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TECHBANK_CACHE_URL,
            "KEY_PREFIX": "techbank",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
# How long an API token is accepted after it was made (drf_create_token -r USER makes a new one).
TECHBANK_TOKEN_TTL_HOURS = float(os.environ.get("TECHBANK_TOKEN_TTL_HOURS", "24"))
# Failed token sign-ins allowed per client address: then 429 until the oldest leaves the period.
TECHBANK_FAILED_SIGN_IN_RATE = os.environ.get("TECHBANK_FAILED_SIGN_IN_RATE", "10/min")
# How long an Idempotency-Key is remembered (per user).
TECHBANK_IDEMPOTENCY_TTL_HOURS = float(os.environ.get("TECHBANK_IDEMPOTENCY_TTL_HOURS", "24"))
# A snapshot of an account is stored once its stream has grown this many events
# past the last one, so loading it replays at most that many; 0 turns snapshots off.
TECHBANK_SNAPSHOT_EVERY = int(os.environ.get("TECHBANK_SNAPSHOT_EVERY", "100"))
# How often a command that lost a race for its account is reloaded and retried.
TECHBANK_COMMAND_MAX_ATTEMPTS = int(os.environ.get("TECHBANK_COMMAND_MAX_ATTEMPTS", "30"))

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_TASK_IGNORE_RESULT = True
# Stacks that share one Redis keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TECHBANK_CELERY_QUEUE", "techbank")
# `celery -A techbank_site worker -B` runs the relay and the projection consumer as long-running
# companion processes (techbank_site/celery.py); relay-outbox is only a safety net (it does nothing
# while the following relay holds the lock). `expires` drops runs that waited too long.
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {"task": "entrypoints.tasks.relay_outbox_task", "schedule": 1.0, "options": {"expires": 5}},
    "purge-idempotency-keys": {"task": "entrypoints.tasks.purge_idempotency_records_task", "schedule": 3600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("TECHBANK_LOG_LEVEL", "INFO")},
}
