# Django settings for the interoperability tests and the benchmark. Every
# knob comes from the environment so each Go test can point Django at its
# own database, cache key prefix and session engine.
import os

env = os.environ.get

SECRET_KEY = env("DJ_SECRET_KEY", "test-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("DJ_DB_NAME", "test"),
        "HOST": env("DJ_DB_HOST", "127.0.0.1"),
        "PORT": env("DJ_DB_PORT", "5432"),
        "USER": env("DJ_DB_USER", "postgres"),
        "PASSWORD": env("DJ_DB_PASSWORD", ""),
        "CONN_MAX_AGE": 600,  # a production site keeps its connections
    }
}
SESSION_ENGINE = env("DJ_SESSION_ENGINE", "django.contrib.sessions.backends.db")
if env("DJ_SESSION_SERIALIZER") == "pickle":
    SESSION_SERIALIZER = "django.contrib.sessions.serializers.PickleSerializer"
# Fast hashing: the tests log in often and the hash algorithm is not what
# they test (the session auth hash covers whatever the password field is).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

cache = env("DJ_CACHE", "locmem")
prefix = env("DJ_KEY_PREFIX", "")
if cache == "redis" or cache == "redis-json":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": env("DJ_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "KEY_PREFIX": prefix,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    if cache == "redis-json":
        CACHES["default"]["OPTIONS"]["SERIALIZER"] = "django_redis.serializers.json.JSONSerializer"
elif cache == "memcached":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": env("DJ_MEMCACHED", "127.0.0.1:11211"),
            "KEY_PREFIX": prefix,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
