# The Celery app is loaded with Django so that tasks.add.delay() in a view
# uses the CELERY_* settings.
from .celery import app as celery_app

__all__ = ("celery_app",)
