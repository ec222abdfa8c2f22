"""The Celery app. Tasks live in each app's tasks.py; settings are the CELERY_* block."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vendo")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The reaper has a queue of its own: behind a generation backlog it would come too late to
# repair it. Dead letters live in the database (jobs.DeadLetter), not in a queue.
app.conf.task_queues = (Queue("payments"), Queue("generation"), Queue("reaper"))
app.autodiscover_tasks()
