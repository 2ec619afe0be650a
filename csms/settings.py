"""Dynamo CSMS settings: every knob is an environment variable with a safe default.

Embedded default (no variables set): SQLite in ``var/``, the in-memory channel layer and a
filesystem Celery broker, so ``make run`` needs no external service. ``DATABASE_URL`` and
``REDIS_URL`` switch to PostgreSQL and Redis (channel layer and Celery broker).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu.transport import TRANSPORT_ALIASES
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from csms.env import env_bool, env_choice, env_dir, env_int, env_list, env_rate, env_redis_url, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_dir("CSMS_VAR_DIR", BASE_DIR / "var")


def _secret_key() -> str:
    """Use DJANGO_SECRET_KEY, else a random key generated once and kept in VAR_DIR."""
    configured = env_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Django matches a request's host without its port against these: a URL or a host with a port (README's
# LAN example written as http://192.168.1.20:9000) matches nothing, and every request was a 400 Bad Request.
for _host in ALLOWED_HOSTS:
    if "/" in _host or re.fullmatch(r"(\[[^\]]*\]|[^\[\]:]*):[0-9]*", _host):
        raise ImproperlyConfigured(
            f"DJANGO_ALLOWED_HOSTS: {_host!r} is not a host name: give it without scheme, port or path"
            " (csms.example.com, 192.168.1.20, [::1])."
        )
    # Django's wildcards are "*" alone and a leading "." (.example.com: it and its subdomains); a "*" in a
    # name (*.example.com, a certificate's or nginx's spelling) is compared as it is and matched no request.
    if "*" in _host and _host != "*":
        raise ImproperlyConfigured(
            f"DJANGO_ALLOWED_HOSTS: {_host!r} matches no host: Django's wildcards are * alone (any host)"
            " and a leading dot (.example.com: example.com and its subdomains)."
        )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Django's system check refuses an origin without its scheme, but only in manage.py: `make serve`, daphne and
# Celery run no checks, and served on with an entry that matches no origin.
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.partition("://")[2]:
        raise ImproperlyConfigured(
            f"DJANGO_CSRF_TRUSTED_ORIGINS: {_origin!r} is not an origin: a scheme, :// and a host"
            " (https://csms.example.com)."
        )
# Behind the TLS-terminating proxy (deploy/Caddyfile): trust its X-Forwarded-Proto, send the session
# and CSRF cookies over HTTPS only, and ask browsers to stay on HTTPS.
CSMS_BEHIND_TLS = env_bool("CSMS_BEHIND_TLS", False)
if CSMS_BEHIND_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000

INSTALLED_APPS = [
    "daphne",
    "csms.apps.CsmsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "kernel",
    "csms",
    "chargepoints",
    "charging",
    "ocpp_gateway",
    "commands",
    "webhooks",
    "billing",
    "configuration",
    "maintenance",
    "sites",
    "axes",
    "django_cleanup.apps.CleanupConfig",  # last: it sees every model with a file field
]

# A synchronous-only middleware last: Django then runs every middleware above it in the request's
# thread, one thread hop for the whole chain, instead of two hops per sync/async-capable middleware
# (process_request, process_response) when the innermost ones run in async mode.
MIDDLEWARE = [
    "csms.middleware.HeadWithoutBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csms.middleware.RejectNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "csms.middleware.ApiBodyLimitMiddleware",
]

ROOT_URLCONF = "csms.urls"
ASGI_APPLICATION = "csms.asgi.application"

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

# --- Database -------------------------------------------------------------------------------


def _database() -> dict[str, Any]:
    """DATABASE_URL as dj-database-url reads it; empty is unset, as for REDIS_URL (and
    `make serve --production`, which asks for both)."""
    url = env_str("DATABASE_URL").strip()
    if url and "://" not in url:  # dj-database-url's own words: "Scheme '://' is unknown", then every scheme it has
        raise ImproperlyConfigured(
            "DATABASE_URL is not a database URL: it does not start with a scheme and :// (postgres://user:password@host:5432/name)."
        )
    try:
        database = dict(dj_database_url.parse(url or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"))
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {error}") from None  # may hold a password
    # Django asks for the name only when it first connects: `migrate` and every worker's first request
    # ended in a traceback ("settings.DATABASES is improperly configured"), `manage.py check` passed.
    options = database.get("OPTIONS")
    if not database["NAME"] and not (isinstance(options, dict) and options.get("service")):
        raise ImproperlyConfigured(
            "DATABASE_URL names no database: give its name after the host (postgres://user:password@host:5432/name)."
        )
    return database


DATABASES = {"default": _database()}
# The pool's and the Redis connections' settings are read whatever the database and channel layer, so that
# a bad value stops `make run` on SQLite too, not the first start with DATABASE_URL or REDIS_URL set.
_POOL_TIMEOUT = env_int("CSMS_DB_POOL_TIMEOUT", 10, minimum=1)
_POOL_MIN, _POOL_MAX = env_int("CSMS_DB_POOL_MIN", 2, minimum=0), env_int("CSMS_DB_POOL_MAX", 20, minimum=1)
_POOL_MAX_IDLE = env_int("CSMS_DB_POOL_MAX_IDLE", 600, minimum=1)
if _POOL_MIN > _POOL_MAX:
    raise ImproperlyConfigured(f"CSMS_DB_POOL_MIN={_POOL_MIN} is above CSMS_DB_POOL_MAX={_POOL_MAX}.")
_PREPARE_THRESHOLD = env_int("CSMS_DB_PREPARE_THRESHOLD", 5, minimum=0)
_REDIS_MAX_CONNECTIONS = env_int("CSMS_REDIS_MAX_CONNECTIONS", 200, minimum=2)
_REDIS_POOL_TIMEOUT = env_int("CSMS_REDIS_POOL_TIMEOUT", 20, minimum=1)
_CHANNEL_CAPACITY = env_int("CSMS_CHANNEL_CAPACITY", 1000, minimum=10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in its own thread, so per-thread persistent connections
    # would pile up; a psycopg pool shared by the process bounds them instead. Keep the pool's
    # max at least CSMS_DB_THREADS plus the concurrent HTTP requests you expect.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # After PostgreSQL restarts, the pool's idle connections are dead: the pool checks each as it
    # is taken (kernel/db_pool.py: a poll of its socket, an empty query only when something is there
    # to read; the backend csms.postgresql sets it), so they do not fail the first requests after
    # the restart. Django's own check (CONN_HEALTH_CHECKS) would send the empty query on every
    # checkout: a round trip per request.
    DATABASES["default"]["ENGINE"] = "csms.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": _POOL_MIN,
            "max_size": _POOL_MAX,
            "timeout": _POOL_TIMEOUT,
            # Connections above min_size unused this long (s) are closed: a busy minute's connections
            # do not stay open for good (PostgreSQL's max_connections is shared by every process).
            "max_idle": _POOL_MAX_IDLE,
            # psycopg retries a failed connect with a doubling backoff for 5 minutes, so after a
            # long outage the pool could notice PostgreSQL is back minutes late. Giving up after
            # one pool timeout lets the next request start a fresh attempt at once.
            "reconnect_timeout": _POOL_TIMEOUT,
        }
    }
    # The statements the gateway's hot path binds on the server (kernel.plain_sql.bound_cursor) are
    # prepared by psycopg once one has run this many times on a connection: PostgreSQL then parses
    # and plans it once per connection instead of on every message. 0: never (PgBouncer before
    # 1.21 in transaction mode). The ORM's own queries are bound on the client and never prepared.
    if _PREPARE_THRESHOLD:
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = _PREPARE_THRESHOLD
else:
    # Several processes (daphne, celery) share the SQLite file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Worker threads for the OCPP gateway's database calls (per process): chargers' messages are
# processed side by side on these instead of queueing for asgiref's single shared thread.
CSMS_DB_THREADS = env_int("CSMS_DB_THREADS", 8, minimum=1)
# Group commit (ocpp_gateway/group_commit.py): the writes chargers are answered about go to the
# database in batches of up to MAX_UNITS messages, one batch at a time per process.
CSMS_GROUP_COMMIT_MAX_UNITS = env_int("CSMS_GROUP_COMMIT_MAX_UNITS", 64, minimum=1)
# ...and at most LANES batches at once, each on its own thread and connection, holding different
# chargers' units (PostgreSQL; SQLite writes one transaction at a time).
_ONE_WRITER = DATABASES["default"]["ENGINE"] != "csms.postgresql"
CSMS_GROUP_COMMIT_LANES = env_int("CSMS_GROUP_COMMIT_LANES", 1 if _ONE_WRITER else 2, minimum=1)
if _ONE_WRITER and CSMS_GROUP_COMMIT_LANES > 1:
    raise ImproperlyConfigured(
        f"CSMS_GROUP_COMMIT_LANES={CSMS_GROUP_COMMIT_LANES}: SQLite writes one transaction at a time;"
        " use 1 or PostgreSQL."
    )
# ...and a batch waits at most this long for a row lock; the unit that needed it gets a CALLERROR.
CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS = env_int("CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS", 5000, minimum=1)
# A gateway process keeps the id tags Authorize reads this long (s; 0: read each time). A change
# saved in another process (API, admin) reaches its Authorize answers within this time.
CSMS_ID_TAG_CACHE_SECONDS = env_int("CSMS_ID_TAG_CACHE_SECONDS", 5, minimum=0)

# --- Channel layer and Celery broker --------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # A Redis connection pool that makes a burst of connects wait instead of failing.
            "BACKEND": "ocpp_gateway.channel_layer.BlockingPoolRedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, exactly channels-redis's
                # 5 s blocking pop: idle consumers would fail with "Timeout reading". Be longer.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "socket_connect_timeout": 5,
                        # After a Redis restart pooled connections are dead: ping one idle this long before
                        # use, and retry a command once more on a fresh connection when one breaks.
                        "health_check_interval": 5,
                        "retry_on_error": [RedisConnectionError],
                        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=3),
                        "max_connections": _REDIS_MAX_CONNECTIONS,
                        "timeout": _REDIS_POOL_TIMEOUT,
                    }
                ],
                "capacity": _CHANNEL_CAPACITY,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# kombu names a Redis socket redis+socket:// (it has no unix:// transport).
_REDIS_BROKER = "redis+socket://" + REDIS_URL.removeprefix("unix://") if REDIS_URL.startswith("unix://") else REDIS_URL
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", _REDIS_BROKER or "filesystem://", schemes=tuple(TRANSPORT_ALIASES), failover=True
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery-broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control in the working directory
    }
    CELERY_BROKER_TRANSPORT = "csms.broker:FilesystemTransport"  # whole messages only (csms/broker.py)
CELERY_TASK_IGNORE_RESULT = True
# Webhook delivery has a worker of its own (README "Processes"); everything else uses the default queue,
# the webhooks' hourly prune too (the webhook worker's queue carries only its wake-ups).
CELERY_TASK_ROUTES = {
    "webhooks.tasks.prune_webhook_deliveries": {"queue": "celery"},
    "webhooks.tasks.*": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Admin sign-in is throttled (django-axes): after CSMS_ADMIN_LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is locked out for CSMS_ADMIN_LOGIN_COOLOFF_MINUTES
# (each further try restarts the wait). Attempts are kept in the database ("Access attempts" in
# the admin, where a lockout can be lifted); the client address is REMOTE_ADDR (daphne sets it
# from X-Forwarded-For behind the proxy).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("CSMS_ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CSMS_ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "csms.admin_lockout.admin_lockout_response"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date/time format across the admin: 2026-11-30 14:05:09 UTC (csms/formats/en/formats.py).
FORMAT_MODULE_PATH = "csms.formats"
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["kernel.authentication.BearerApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "kernel.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_SCHEMA_CLASS": "kernel.openapi.ApiSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "kernel.negotiation.JsonFirstNegotiation",
    "DEFAULT_PARSER_CLASSES": ["kernel.parsers.JsonParser"],
    "EXCEPTION_HANDLER": "kernel.api_errors.api_exception_handler",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
    "DEFAULT_PAGINATION_CLASS": "kernel.pagination.Pagination",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["kernel.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_rate("CSMS_API_RATE", "6000/minute")},
    # The client's address (throttling per address) is REMOTE_ADDR, which daphne sets from
    # X-Forwarded-For behind the proxy (--proxy-headers); unset, DRF took a client's own
    # X-Forwarded-For, and a new one with each request escaped every count.
    "NUM_PROXIES": 0,
}
# Throttle counts (and any other cache use) are shared by every process through Redis when it is there.
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, with one connection pool per process (csms/cache.py).
            "BACKEND": "csms.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            # A hung Redis must not hold API requests: the throttle then lets them through.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
SPECTACULAR_SETTINGS = {
    "TITLE": "Dynamo CSMS API",
    "DESCRIPTION": "Charge Station Management System: fleet, OCPP commands, sessions, webhooks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Product settings -----------------------------------------------------------------------
CSMS_DEFAULT_HEARTBEAT_INTERVAL = env_int("CSMS_DEFAULT_HEARTBEAT_INTERVAL", 300, minimum=1)
CSMS_OCPP_CALL_TIMEOUT = env_int("CSMS_OCPP_CALL_TIMEOUT", 30, minimum=1)
# Read a charger's configuration (1.6 GetConfiguration, 2.0.1 GetBaseReport) after each accepted boot.
CSMS_CONFIGURATION_REFRESH_ON_BOOT = env_bool("CSMS_CONFIGURATION_REFRESH_ON_BOOT", True)
# ... except after a boot reporting the vendor, model and firmware version of the charger's last one,
# when the charger answered a read of its whole configuration within this many seconds (a restart's
# reconnect storm re-reads nothing); 0: after every accepted boot.
CSMS_CONFIGURATION_REFRESH_MAX_AGE = env_int("CSMS_CONFIGURATION_REFRESH_MAX_AGE", 3600, minimum=0)
CSMS_OFFLINE_CHECK_INTERVAL = env_int("CSMS_OFFLINE_CHECK_INTERVAL", 30, minimum=1)
# Each gateway process announces itself in Redis for this long and renews every RENEW s; presence
# held by a process whose announcement expired is released (its chargers go offline).
CSMS_GATEWAY_PRESENCE_TTL = env_int("CSMS_GATEWAY_PRESENCE_TTL", 15, minimum=3)
CSMS_GATEWAY_PRESENCE_RENEW = env_int("CSMS_GATEWAY_PRESENCE_RENEW", 5, minimum=1)
if CSMS_GATEWAY_PRESENCE_RENEW * 2 > CSMS_GATEWAY_PRESENCE_TTL:
    raise ImproperlyConfigured("CSMS_GATEWAY_PRESENCE_RENEW must be at most half of CSMS_GATEWAY_PRESENCE_TTL.")
_MAX_DAYS = 36500  # a century: more than any retention needs, well within datetime arithmetic
CSMS_MESSAGE_LOG_DAYS = env_int("CSMS_MESSAGE_LOG_DAYS", 30, minimum=1, maximum=_MAX_DAYS)
CSMS_HEARTBEAT_RETENTION_DAYS = env_int("CSMS_HEARTBEAT_RETENTION_DAYS", 7, minimum=1, maximum=_MAX_DAYS)
# Finished webhook deliveries (delivered, or failed for good) and their attempts; their bodies hold id tags.
CSMS_WEBHOOK_DELIVERY_DAYS = env_int("CSMS_WEBHOOK_DELIVERY_DAYS", 30, minimum=1, maximum=_MAX_DAYS)
CSMS_MESSAGE_LOG_FLUSH_SECONDS = env_int("CSMS_MESSAGE_LOG_FLUSH_MS", 200, minimum=10) / 1000
CSMS_WEBHOOK_RETRY_BASE = env_int("CSMS_WEBHOOK_RETRY_BASE", 30, minimum=1)
CSMS_WEBHOOK_MAX_ATTEMPTS = env_int("CSMS_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=100)
# The last retry waits RETRY_BASE x 2^(MAX_ATTEMPTS - 2) s: its date must stay within datetime's range.
if CSMS_WEBHOOK_RETRY_BASE * 2 ** max(CSMS_WEBHOOK_MAX_ATTEMPTS - 2, 0) > _MAX_DAYS * 86400:
    raise ImproperlyConfigured(
        "CSMS_WEBHOOK_RETRY_BASE x 2^(CSMS_WEBHOOK_MAX_ATTEMPTS - 2), the last retry's wait, must be at most"
        f" {_MAX_DAYS} days."
    )
CSMS_WEBHOOK_TIMEOUT = env_int("CSMS_WEBHOOK_TIMEOUT", 10, minimum=1)
# Smart charging of sites (sites/engine.py): a rise smaller than the hysteresis is not sent; a car
# drawing more than the margin below its limit is offered its draw plus the margin; at most one
# profile per charger per interval (decreases are never held back); an offline charger's share is
# kept for it this long.
CSMS_SITES_HYSTERESIS_A = env_int("CSMS_SITES_HYSTERESIS_A", 1, minimum=0)
CSMS_SITES_DRAW_MARGIN_A = env_int("CSMS_SITES_DRAW_MARGIN_A", 1, minimum=0)
CSMS_SITES_PROFILE_MIN_INTERVAL = env_int("CSMS_SITES_PROFILE_MIN_INTERVAL", 10, minimum=0)
CSMS_SITES_OFFLINE_RESERVE_SECONDS = env_int("CSMS_SITES_OFFLINE_RESERVE_SECONDS", 900, minimum=0)
CSMS_SITES_RECOMPUTE_INTERVAL = env_int("CSMS_SITES_RECOMPUTE_INTERVAL", 60, minimum=1)
CSMS_SITES_PROFILE_VALIDITY = env_int("CSMS_SITES_PROFILE_VALIDITY", 900, minimum=60)
if CSMS_SITES_PROFILE_VALIDITY < 4 * CSMS_SITES_RECOMPUTE_INTERVAL:
    raise ImproperlyConfigured(
        "CSMS_SITES_PROFILE_VALIDITY must be at least 4 x CSMS_SITES_RECOMPUTE_INTERVAL: profiles are renewed"
        " at half their validity by that sweep."
    )
CSMS_WEBHOOK_ALLOW_PRIVATE = env_bool("CSMS_WEBHOOK_ALLOW_PRIVATE", False)
CSMS_WEBHOOK_SWEEP_INTERVAL = env_int("CSMS_WEBHOOK_SWEEP_INTERVAL", 1, minimum=1)
CSMS_WEBHOOK_CLAIM_LEASE_SECONDS = env_int("CSMS_WEBHOOK_CLAIM_LEASE_SECONDS", 120, minimum=2)
# Deliveries in flight per webhook worker process, and at most this many to one subscription.
CSMS_WEBHOOK_MAX_IN_FLIGHT = env_int("CSMS_WEBHOOK_MAX_IN_FLIGHT", 512, minimum=1)
CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER = env_int("CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER", 128, minimum=1)
CSMS_WEBHOOK_SECRET_GRACE_SECONDS = env_int("CSMS_WEBHOOK_SECRET_GRACE_SECONDS", 86400, minimum=0)
CSMS_LAST_SEEN_WRITE_SECONDS = env_int("CSMS_LAST_SEEN_WRITE_SECONDS", 5, minimum=0)
CSMS_HEARTBEAT_FLUSH_SECONDS = env_int("CSMS_HEARTBEAT_FLUSH_MS", 1000, minimum=10) / 1000
# Meter plausibility: a register step larger than this power over the time between two
# readings, plus the tolerance, is an implausible jump (flagged, not billed).
CSMS_METER_MAX_POWER_KW = env_int("CSMS_METER_MAX_POWER_KW", 400, minimum=1)
CSMS_METER_JUMP_TOLERANCE_WH = env_int("CSMS_METER_JUMP_TOLERANCE_WH", 50000, minimum=0)
# Charger clocks: a timestamp further ahead of its receipt than this is implausible (chargepoints.clock).
CSMS_CLOCK_SKEW_TOLERANCE = env_int("CSMS_CLOCK_SKEW_TOLERANCE", 300, minimum=0)
CSMS_RESERVATION_CHECK_INTERVAL = env_int("CSMS_RESERVATION_CHECK_INTERVAL", 60, minimum=1)
# Charger admission: unknown chargers are refused unless auto-registered (as pending);
# a required password refuses every charger that has none set.
CSMS_AUTO_REGISTER = env_bool("CSMS_AUTO_REGISTER", False)
# ...at most this many waiting for commissioning at once: past it, unknown chargers are refused (a stranger
# opening handshakes with made-up ids fills the fleet with pending rows otherwise).
CSMS_AUTO_REGISTER_MAX_PENDING = env_int("CSMS_AUTO_REGISTER_MAX_PENDING", 1000, minimum=1)
CSMS_REQUIRE_CHARGER_PASSWORD = env_bool("CSMS_REQUIRE_CHARGER_PASSWORD", False)
# Wrong charger passwords: failures per identity and per client address within the window,
# beyond which a handshake is refused before any password hashing; hashes one process runs at once.
CSMS_CHARGER_AUTH_FAILURES_PER_ID = env_int("CSMS_CHARGER_AUTH_FAILURES_PER_ID", 5, minimum=1)
CSMS_CHARGER_AUTH_FAILURES_PER_IP = env_int("CSMS_CHARGER_AUTH_FAILURES_PER_IP", 50, minimum=1)
CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS = env_int("CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS", 300, minimum=1)
# Refused API keys (Bearer) per client address and window, then 429 for that address until the window ends.
CSMS_API_AUTH_FAILURES_PER_IP = env_int("CSMS_API_AUTH_FAILURES_PER_IP", 20, minimum=1)
CSMS_API_AUTH_FAILURE_WINDOW_SECONDS = env_int("CSMS_API_AUTH_FAILURE_WINDOW_SECONDS", 300, minimum=1)
CSMS_CHARGER_PASSWORD_HASHES_IN_FLIGHT = env_int("CSMS_CHARGER_PASSWORD_HASHES_IN_FLIGHT", 2, minimum=1)
# Flood limits per connection and per client address; excess is answered or refused, and logged.
CSMS_MAX_FRAME_BYTES = env_int("CSMS_MAX_FRAME_BYTES", 65536, minimum=1024)
CSMS_MAX_FRAMES_PER_SECOND = env_int("CSMS_MAX_FRAMES_PER_SECOND", 20, minimum=1)
CSMS_FRAME_BURST = env_int("CSMS_FRAME_BURST", 60, minimum=1)
# The highest EVSE and connector id a StatusNotification may name (each new one is a connector row).
CSMS_MAX_CONNECTOR_ID = env_int("CSMS_MAX_CONNECTOR_ID", 128, minimum=1)
# The most 2.0.1 device model variables kept per charger (a NotifyReport naming more new ones: left out).
CSMS_MAX_DEVICE_MODEL_VARIABLES = env_int("CSMS_MAX_DEVICE_MODEL_VARIABLES", 10000, minimum=1)
# The newest 2.0.1 device model reports (NotifyReport requestIds) kept per charger; older ones are
# deleted by a sweep (configuration.tasks.prune_device_model_reports), never by the report's own write.
CSMS_MAX_DEVICE_MODEL_REPORTS = env_int("CSMS_MAX_DEVICE_MODEL_REPORTS", 100, minimum=1)
# The newest 2.0.1 EV charging needs (NotifyEVChargingNeeds) kept per charger; older ones are deleted.
CSMS_MAX_EV_CHARGING_NEEDS = env_int("CSMS_MAX_EV_CHARGING_NEEDS", 100, minimum=1)
# The most open reconciliation items (parked stops) per charger: a stop of no session past it is not parked.
CSMS_MAX_OPEN_RECONCILIATION_ITEMS = env_int("CSMS_MAX_OPEN_RECONCILIATION_ITEMS", 1000, minimum=1)
# The most entries (seqNos or runs of them) a 2.0.1 session keeps of the seqNos its events used.
CSMS_MAX_SEQ_NO_ENTRIES = env_int("CSMS_MAX_SEQ_NO_ENTRIES", 1000, minimum=2)
CSMS_MAX_HANDSHAKES_PER_IP = env_int("CSMS_MAX_HANDSHAKES_PER_IP", 200, minimum=1)
CSMS_MAX_HANDSHAKES_IN_FLIGHT = env_int("CSMS_MAX_HANDSHAKES_IN_FLIGHT", 400, minimum=1)
# Seconds a charger refused for CSMS_MAX_HANDSHAKES_IN_FLIGHT is told to wait (503 Retry-After, jittered ±50 %;
# in a storm its turn at 1.5x the measured admission rate instead, at most 3x away: kernel/daphne_server.py).
CSMS_HANDSHAKE_RETRY_AFTER = env_int("CSMS_HANDSHAKE_RETRY_AFTER", 10, minimum=1)
# Seconds a charger's WebSocket handshake may take in the gateway (admission, presence) before it is answered
# 503 with Retry-After like a refused one (daphne's --websocket_connect_timeout, 5 s, answered 403; issue 15).
CSMS_HANDSHAKE_TIMEOUT = env_int("CSMS_HANDSHAKE_TIMEOUT", 7, minimum=1)
# Seconds a connection may take to send a request's line and headers, from its start (on a kept-alive one,
# from its next request's first byte) before it is answered 408 and closed (slow-loris; kernel/request_heads.py).
CSMS_REQUEST_HEAD_TIMEOUT = env_int("CSMS_REQUEST_HEAD_TIMEOUT", 30, minimum=1)
CSMS_ADMIN_DASHBOARD_REFRESH_SECONDS = env_int("CSMS_ADMIN_DASHBOARD_REFRESH_SECONDS", 10, minimum=1)
# Prometheus metrics on /metrics, added up over every process of the host through the files in
# CSMS_METRICS_DIR (prometheus-client multiprocess mode reads PROMETHEUS_MULTIPROC_DIR at import).
CSMS_METRICS_ENABLED = env_bool("CSMS_METRICS_ENABLED", True)
CSMS_METRICS_DIR = env_str("CSMS_METRICS_DIR", str(VAR_DIR / "metrics"))
if CSMS_METRICS_ENABLED:
    CSMS_METRICS_DIR = str(env_dir("CSMS_METRICS_DIR", VAR_DIR / "metrics"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = CSMS_METRICS_DIR

# Firmware and diagnostics files (maintenance app): the filesystem under VAR_DIR, or an
# S3-compatible bucket through django-storages when CSMS_S3_BUCKET is set (needs boto3).
CSMS_S3_BUCKET = env_str("CSMS_S3_BUCKET").strip()
# boto3 refused these at the first upload or download (an operator's, a charger's), not at start; the
# others set without the bucket stored every file in CSMS_FILES_DIR (a container's disk) unannounced.
_S3_OTHERS = ("CSMS_S3_ENDPOINT_URL", "CSMS_S3_REGION", "CSMS_S3_ACCESS_KEY_ID", "CSMS_S3_SECRET_ACCESS_KEY")
_S3 = {name: env_str(name).strip() for name in _S3_OTHERS}
if not CSMS_S3_BUCKET and (_stray := [name for name, value in _S3.items() if value]):
    raise ImproperlyConfigured(
        f"{', '.join(_stray)} set without CSMS_S3_BUCKET: files would be stored in CSMS_FILES_DIR;"
        " set CSMS_S3_BUCKET too, or unset them."
    )
if CSMS_S3_BUCKET and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]", CSMS_S3_BUCKET):
    raise ImproperlyConfigured(
        f"CSMS_S3_BUCKET={CSMS_S3_BUCKET!r} is not a bucket name: the name alone (3 to 63 letters, digits,"
        " '.', '-', '_'), not a URL or a path; CSMS_S3_ENDPOINT_URL names the server."
    )
env_url("CSMS_S3_ENDPOINT_URL", schemes=("http", "https"), needs_host=True)
if _S3["CSMS_S3_REGION"] and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", _S3["CSMS_S3_REGION"]):
    raise ImproperlyConfigured(f"CSMS_S3_REGION={_S3['CSMS_S3_REGION']!r} is not a region name (eu-west-1).")
if bool(_S3["CSMS_S3_ACCESS_KEY_ID"]) != bool(_S3["CSMS_S3_SECRET_ACCESS_KEY"]):
    raise ImproperlyConfigured(
        "CSMS_S3_ACCESS_KEY_ID and CSMS_S3_SECRET_ACCESS_KEY go together: set both, or neither"
        " (boto3's own credential chain)."
    )
# Empty is the default (not the working directory); created and checked writable at start unless a bucket holds them.
CSMS_FILES_DIR = (
    env_str("CSMS_FILES_DIR").strip() or str(VAR_DIR / "files")
    if CSMS_S3_BUCKET
    else str(env_dir("CSMS_FILES_DIR", VAR_DIR / "files"))
)
if CSMS_S3_BUCKET and importlib.util.find_spec("boto3") is None:
    raise ImproperlyConfigured(f"CSMS_S3_BUCKET={CSMS_S3_BUCKET!r} needs boto3: pip install boto3.")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": CSMS_FILES_DIR}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if CSMS_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": CSMS_S3_BUCKET,
            "endpoint_url": _S3["CSMS_S3_ENDPOINT_URL"] or None,
            "region_name": _S3["CSMS_S3_REGION"] or None,
            "access_key": _S3["CSMS_S3_ACCESS_KEY_ID"] or None,
            "secret_key": _S3["CSMS_S3_SECRET_ACCESS_KEY"] or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
# The address chargers reach the CSMS's HTTP side at (behind the proxy: its public https:// URL):
# firmware download and diagnostics upload URLs are built on it.
# An absolute http(s) URL (OCPP's locations are absolute URIs); empty: the default.
CSMS_PUBLIC_URL = env_url("CSMS_PUBLIC_URL", "http://localhost:8000", schemes=("http", "https"), needs_host=True)
CSMS_PUBLIC_URL = CSMS_PUBLIC_URL.rstrip("/")
CSMS_FIRMWARE_URL_TTL = env_int("CSMS_FIRMWARE_URL_TTL", 86400, minimum=60)
CSMS_FIRMWARE_STATUS_TIMEOUT = env_int("CSMS_FIRMWARE_STATUS_TIMEOUT", 3600, minimum=1)
CSMS_FIRMWARE_CAMPAIGN_TICK = env_int("CSMS_FIRMWARE_CAMPAIGN_TICK", 30, minimum=1)
CSMS_DIAGNOSTICS_UPLOAD_TTL = env_int("CSMS_DIAGNOSTICS_UPLOAD_TTL", 86400, minimum=60)
# A size in bytes, compared in Python and stored as a 64-bit integer: not held to 2^31-1 as counts are.
CSMS_DIAGNOSTICS_MAX_BYTES = env_int("CSMS_DIAGNOSTICS_MAX_BYTES", 200 * 1024 * 1024, minimum=1024, maximum=2**63 - 1)
# The largest firmware image the API and the admin take (a form over it is refused as it arrives, 413).
CSMS_FIRMWARE_MAX_BYTES = env_int("CSMS_FIRMWARE_MAX_BYTES", 512 * 1024 * 1024, minimum=1024, maximum=2**63 - 1)


def _sweep(task: str, every: float) -> dict[str, Any]:
    """A beat sweep every ``every`` s. Each tick expires when the next is sent: one the worker gets to
    later (it was down, its slots busy) is dropped, not run after the newer one (a day's outage left
    2,880 offline sweeps and 17,280 presence sweeps queued, run one after the other on its return).
    A tick that finds its sweep still running returns at once (``kernel.single_flight``)."""
    return {"task": task, "schedule": float(every), "options": {"expires": float(every)}}


CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "advance-firmware-campaigns": _sweep("maintenance.tasks.advance_firmware_campaigns", CSMS_FIRMWARE_CAMPAIGN_TICK),
    "mark-offline-stale-charge-points": _sweep(
        "chargepoints.tasks.mark_offline_stale_charge_points", CSMS_OFFLINE_CHECK_INTERVAL
    ),
    "time-out-abandoned-commands": _sweep("ocpp_gateway.tasks.time_out_abandoned_commands", 60),
    "release-dead-gateway-presence": _sweep(
        "ocpp_gateway.tasks.release_dead_gateway_presence", CSMS_GATEWAY_PRESENCE_RENEW
    ),
    # A wake-up of the webhook worker: not sent while one waits (webhooks.tasks.WakeUp), no expiry.
    "deliver-due-webhooks": {
        "task": "webhooks.tasks.deliver_due_webhooks",
        "schedule": float(CSMS_WEBHOOK_SWEEP_INTERVAL),
    },
    # charging.tasks, under the name it always had
    "expire-reservations": _sweep("chargepoints.tasks.expire_reservations", CSMS_RESERVATION_CHECK_INTERVAL),
    "expire-log-uploads": _sweep("maintenance.tasks.expire_log_uploads", 60),
    "close-stranded-sessions": _sweep("charging.tasks.close_stranded_sessions", 60),
    "close-sessions-a-reset-ended": _sweep("commands.tasks.close_sessions_a_reset_ended", 60),
    "prune-heartbeats": _sweep("chargepoints.tasks.prune_heartbeats", 3600),
    "prune-ocpp-messages": _sweep("chargepoints.tasks.prune_ocpp_messages", 3600),
    "prune-webhook-deliveries": _sweep("webhooks.tasks.prune_webhook_deliveries", 3600),
    "prune-device-model-reports": _sweep("configuration.tasks.prune_device_model_reports", 300),
    "recompute-sites": _sweep("sites.tasks.recompute_sites", CSMS_SITES_RECOMPUTE_INTERVAL),
}

# One format for daphne, Django and Celery (Celery leaves the root logger to this configuration).
_LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical", "fatal", "notset")  # logging's names
CSMS_LOG_FORMAT = env_choice("CSMS_LOG_FORMAT", "plain", ("plain", "json"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "kernel.log_format.ContextFilter"},
        "quiet_expected_errors": {"()": "kernel.log_format.QuietExpectedErrors"},
        "quiet_outages": {"()": "kernel.log_format.QuietOutages"},
        "quiet_frequent_ticks": {"()": "kernel.log_format.QuietFrequentTicks"},
        "redacted_links": {"()": "kernel.log_format.RedactedLinks"},
    },
    "formatters": {
        "plain": {
            "()": "kernel.log_format.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"()": "kernel.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": CSMS_LOG_FORMAT,
            "filters": ["context", "quiet_expected_errors", "quiet_outages", "quiet_frequent_ticks", "redacted_links"],
        }
    },
    "root": {"handlers": ["console"], "level": env_choice("CSMS_LOG_LEVEL", "info", _LOG_LEVELS).upper()},
    # axes.apps logs a banner at INFO each time Django starts (every manage.py command): not news.
    "loggers": {"ocpp": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}
