"""Settings of the celeriac tour project. Everything that differs between
machines comes from the environment, so the end-to-end test can point the
site at its own ports."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"set {name}")
    return value


SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
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

ROOT_URLCONF = "tour.urls"
WSGI_APPLICATION = "tour.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# The database is reached through `celeriac dbproxy`, which sends reads to
# a replica and writes to the primary: Django sees one PostgreSQL server.
# In transaction pooling a server-side cursor cannot outlive its
# transaction, hence DISABLE_SERVER_SIDE_CURSORS.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("DJANGO_DB_NAME", "tour"),
        "USER": env("DJANGO_DB_USER", "postgres"),
        "PASSWORD": env("DJANGO_DB_PASSWORD", ""),
        "HOST": env("DJANGO_DB_HOST", "127.0.0.1"),
        "PORT": env("DJANGO_DB_PORT", "6432"),
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions live in Redis through django-redis; `celeriac sessions --engine
# cache --redis <the same URL>` reads them to answer nginx's auth_request.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env("DJANGO_CACHE_URL", "redis://127.0.0.1:6379/1"),
        "KEY_PREFIX": env("DJANGO_CACHE_PREFIX", ""),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# collectstatic writes hashed copies (style.3f2a….css) and staticfiles.json;
# `celeriac static --root STATIC_ROOT` serves them with immutable caching.
STATIC_URL = "/static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"

USE_TZ = True
TIME_ZONE = "UTC"

# Celery: RabbitMQ carries the tasks, Redis keeps the results. The Go
# worker (examples/worker) reads the same two URLs.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Where the Go worker's tasks.credit keeps balances (examples/worker's
# --ledger-prefix); beat credits the account "beat" periodically.
TOUR_LEDGER_PREFIX = env("TOUR_LEDGER_PREFIX", "example:ledger:")

# The page a logged-in user is greeted on by the Go service behind forward
# auth, through nginx.
TOUR_GREETER_URL = env("TOUR_GREETER_URL", "/app/hello")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
