"""Django settings for Berth.

Everything comes from the environment with safe defaults, so ``python manage.py up`` works on a
fresh machine with SQLite and no broker server:

- ``BERTH_DATA_DIR``: the instance's state directory (database, CA, keys, logs); default ``./var``.
- ``DATABASE_URL``: any URL dj-database-url understands; default SQLite in the data directory.
- ``BERTH_SECRET_KEY``: Django's secret key; generated into the data directory when unset.
- ``BERTH_DEBUG``: ``1`` for development error pages.
- ``BERTH_CHANGELOG_RETENTION``: how many revisions the change log keeps for watches.
- ``BERTH_COMPACTION_INTERVAL``: seconds between change-log compactions (0: only on demand).
- ``BERTH_AUDIT_MODE``: ``batch`` (default) or ``blocking``, as kube-apiserver's
  ``--audit-log-mode`` (``clusterapi/audit/log.py``).
- ``BERTH_EVENTS_MODE``: ``batch`` (default) or ``blocking``: how the control loops write
  their Events (``clusterapi/controllers/events.py``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BERTH_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
# What any instance may reuse and can always rebuild: the schema validators' compiled code
# (clusterapi.admission.codecache). BERTH_CACHE_DIR="" turns the cache off.
CACHE_DIR = os.environ.get(
    "BERTH_CACHE_DIR",
    str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "berth"),
)


def _secret_key() -> str:
    """The secret key from the environment, or one kept in the data directory."""
    if key := os.environ.get("BERTH_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("BERTH_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "clusterapi.adminsite.BerthAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "clusterapi.core",
    "clusterapi.audit",
    "clusterapi.identity",
    "clusterapi.metrics",
    "clusterapi",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "clusterapi.urls"
# Kubernetes clients request both "/api" and "/api/" (the Python client adds trailing slashes);
# a redirect would break them, so routes accept both forms instead.
APPEND_SLASH = False

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

ASGI_APPLICATION = "clusterapi.asgi.application"


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'berth.sqlite3'}"
    # Connections are kept per thread: the API serves from a thread pool, and opening a
    # PostgreSQL connection per request would double the cost of a GET.
    config: dict[str, object] = dict(
        dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers run beside the single writer; IMMEDIATE transactions take the write
        # lock up front so two writers queue on busy_timeout instead of failing with
        # "database is locked" when one upgrades from a read lock. Within the process, writers
        # queue on a lock instead of SQLite's sleeping busy handler (clusterapi.store.sqlite).
        config["ENGINE"] = "clusterapi.store.sqlite"
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
            ),
        }
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("BERTH_LOG_LEVEL", "WARNING").upper(),
    },
}

# How many change-log revisions are kept for watches to resume from; older ones answer
# 410 Gone (reason Expired), as etcd compaction does upstream.
BERTH_CHANGELOG_RETENTION = int(os.environ.get("BERTH_CHANGELOG_RETENTION", "100000"))
# How often ``up`` compacts the change log to that retention, like kube-apiserver's
# --etcd-compaction-interval; 0 leaves compaction to ``manage.py compact``.
BERTH_COMPACTION_INTERVAL = float(os.environ.get("BERTH_COMPACTION_INTERVAL", "60"))
# How the audit log is written (kube-apiserver's --audit-log-mode): ``batch`` hands each event
# to a writer thread that commits many in one transaction; ``blocking`` writes it in the
# request's own thread before the answer goes out (never an event lost to a kill -9).
BERTH_AUDIT_MODE = os.environ.get("BERTH_AUDIT_MODE", "batch")
# How the control loops write Events: ``batch`` hands them to a writer thread, as client-go's
# recorder does, and a loop's events share one transaction; ``blocking`` writes each in the
# loop's own thread before it goes on.
BERTH_EVENTS_MODE = os.environ.get("BERTH_EVENTS_MODE", "batch")
for _name, _mode in (
    ("BERTH_AUDIT_MODE", BERTH_AUDIT_MODE),
    ("BERTH_EVENTS_MODE", BERTH_EVENTS_MODE),
):
    if _mode not in ("batch", "blocking"):
        raise ImproperlyConfigured(f"{_name}={_mode!r}: must be 'batch' or 'blocking'")
# The Kubernetes version Berth reports and whose schemas it serves.
BERTH_KUBERNETES_VERSION = "1.37.0"


# --- Celery: the control loops ----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A message a dead worker took is delivered again after this long (the resync usually
    # gets there first). It must exceed the longest countdown a controller sends
    # (``controllers.tasks.MAX_DELAY_SECONDS``), or waiting messages would be duplicated.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 120}
else:
    # A broker that needs no server: messages are files in the data directory, shared by the
    # API server, the worker and beat that ``manage.py up`` starts.
    _queue_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control", "staging"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "berthfs://"  # clusterapi.broker: atomic message files
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "staging_folder": str(_queue_dir / "staging"),
        "store_processed": False,
        # How often the worker looks for new message files (kombu polls; 1 s by default). A
        # new pod takes two hops (the wake-up batch, then the scheduler's key), so the interval
        # counts twice in its start-up time; a look at an idle directory costs microseconds.
        "polling_interval": 0.05,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "resync": {
        "task": "berth.resync",
        "schedule": float(os.environ.get("BERTH_RESYNC_SECONDS", "30")),
        # A resync that could not start before the next one is due is useless.
        "options": {"expires": float(os.environ.get("BERTH_RESYNC_SECONDS", "30"))},
    },
    # Audit events past BERTH_AUDIT_RETENTION_DAYS (clusterapi/audit/log.py) are deleted.
    "audit-prune": {"task": "berth.audit.prune", "schedule": 3600.0},
    # The issuer's signing key rotates when due (clusterapi/identity/keys.py); also done lazily.
    "identity-rotate-keys": {
        "task": "berth.identity.rotate_keys",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    # Metric samples past BERTH_METRICS_RETENTION_SECONDS are deleted (clusterapi/metrics).
    "metrics-prune": {
        "task": "berth.metrics.prune",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Whether committed writes enqueue reconciles (off in unit tests, which call reconcile).
BERTH_CONTROLLERS_ENABLED = os.environ.get("BERTH_CONTROLLERS", "1") == "1"
# Committed changes are handed to the workers in batches, one message per this many seconds
# at most (clusterapi/controllers/wakeups.py); 0 sends each at once (unit tests).
BERTH_WAKE_BATCH_SECONDS = float(os.environ.get("BERTH_WAKE_BATCH_SECONDS", "0.05"))

# The cache holds the controllers' pending-task marks (shared by API servers and workers).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            # Django's file cache, culled once a minute rather than per write.
            "BACKEND": "clusterapi.filecache.FileCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    )
}


# --- Dashboard login: an OIDC relying party (mozilla-django-oidc, dashboard/oidc.py) ----------
# The built-in issuer (<server>/dex, client berth-dashboard) unless BERTH_OIDC_ISSUER names an
# external one; endpoints come from the issuer (dashboard.oidc.provider), not from here.
BERTH_OIDC_ISSUER = os.environ.get("BERTH_OIDC_ISSUER", "")
BERTH_OIDC_DISCOVERY_URL = os.environ.get("BERTH_OIDC_DISCOVERY_URL", "")
BERTH_OIDC_CLIENT_SECRET = os.environ.get("BERTH_OIDC_CLIENT_SECRET", "")
# CA bundle for the back-channel calls (token, JWKS, userinfo); default: this server's CA.
BERTH_OIDC_CA_FILE = os.environ.get("BERTH_OIDC_CA_FILE", "")
# How an external issuer's claims become an RBAC user (the built-in one uses identity.api).
BERTH_OIDC_USERNAME_CLAIM = os.environ.get("BERTH_OIDC_USERNAME_CLAIM", "email")
BERTH_OIDC_USERNAME_PREFIX = os.environ.get("BERTH_OIDC_USERNAME_PREFIX", "")
BERTH_OIDC_GROUPS_CLAIM = os.environ.get("BERTH_OIDC_GROUPS_CLAIM", "groups")
BERTH_OIDC_GROUPS_PREFIX = os.environ.get("BERTH_OIDC_GROUPS_PREFIX", "oidc:")

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # the admin site's own login form
    "dashboard.oidc.OIDCBackend",
]
OIDC_RP_CLIENT_ID = os.environ.get("BERTH_OIDC_CLIENT_ID", "berth-dashboard")
OIDC_RP_CLIENT_SECRET = BERTH_OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile groups"
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the logout
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATE_CLASS = "dashboard.views.OIDCLoginView"
OIDC_CALLBACK_CLASS = "dashboard.views.OIDCCallbackView"
OIDC_OP_LOGOUT_URL_METHOD = "dashboard.oidc.logout_url"
LOGIN_URL = "/oidc/authenticate/"
LOGIN_REDIRECT_URL = "/ui/"
LOGOUT_REDIRECT_URL = "/ui/logged-out/"

# Cookies (ASVS 5.0 3.3): Secure outside development, HttpOnly session, SameSite=Lax so the
# issuer's redirect back to the callback (a top-level GET) still carries the session.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
