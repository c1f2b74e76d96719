"""Django settings for Berth.

Everything comes from the environment with safe defaults, so ``python manage.py up`` works on a
fresh machine with SQLite and no broker server:

- ``BERTH_DATA_DIR``: the instance's state directory (database, CA, keys, logs); default ``./var``.
- ``DATABASE_URL``: any URL dj-database-url understands; default SQLite in the data directory.
- ``BERTH_SECRET_KEY``: Django's secret key; generated into the data directory when unset.
- ``BERTH_DEBUG``: ``1`` for development error pages.
- ``BERTH_CHANGELOG_RETENTION``: how many revisions the change log keeps for watches.
- ``BERTH_COMPACTION_INTERVAL``: seconds between change-log compactions (0: only on demand).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BERTH_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "clusterapi.core",
    "clusterapi.audit",
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
    config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=0))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers run beside the single writer; IMMEDIATE transactions take the write
        # lock up front so two writers queue on busy_timeout instead of failing with
        # "database is locked" when one upgrades from a read lock.
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
    "root": {"handlers": ["console"], "level": os.environ.get("BERTH_LOG_LEVEL", "WARNING")},
}

# How many change-log revisions are kept for watches to resume from; older ones answer
# 410 Gone (reason Expired), as etcd compaction does upstream.
BERTH_CHANGELOG_RETENTION = int(os.environ.get("BERTH_CHANGELOG_RETENTION", "100000"))
# How often ``up`` compacts the change log to that retention, like kube-apiserver's
# --etcd-compaction-interval; 0 leaves compaction to ``manage.py compact``.
BERTH_COMPACTION_INTERVAL = float(os.environ.get("BERTH_COMPACTION_INTERVAL", "60"))
# The Kubernetes version Berth reports and whose schemas it serves.
BERTH_KUBERNETES_VERSION = "1.37.0"
