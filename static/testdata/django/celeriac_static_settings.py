# Minimal Django settings for running collectstatic in the static package's
# tests: ManifestStaticFilesStorage writes hashed copies and staticfiles.json.
import os

SECRET_KEY = "celeriac-static-tests"
DEBUG = False
INSTALLED_APPS = ["django.contrib.staticfiles"]
STATIC_URL = "/static/"
STATIC_ROOT = os.environ["CELERIAC_STATIC_ROOT"]
STATICFILES_DIRS = [os.environ["CELERIAC_ASSETS"]]
STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
USE_TZ = True
