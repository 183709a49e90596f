from django.conf import settings
from django.db import models


class Calculation(models.Model):
    """A sum a user asked for: the row is written (primary) when the tasks
    are sent, and listed (replica) on the home page. The results live in
    the result backend, under the task ids."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    x = models.IntegerField()
    y = models.IntegerField()
    add_task_id = models.CharField(max_length=64)
    chain_task_id = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
