"""The project's Celery app: an ordinary one. Nothing here knows that a Go
worker, not a Python one, consumes the queue."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tour.settings")

app = Celery("tour")
# Every CELERY_* setting in settings.py (CELERY_BROKER_URL, ...).
app.config_from_object("django.conf:settings", namespace="CELERY")
# tasks.py sits at the top of the project so its tasks are named
# "tasks.add", "tasks.mul", ... - the names the Go worker registers.
app.conf.imports = ("tasks",)
