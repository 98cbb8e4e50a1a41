"""The Celery app.

`celery -A techbank_site worker -B` runs the tasks of entrypoints.tasks, beat's
periodic ones, and, beside itself, the worker's companions (entrypoints.worker):
on the Kafka stack the relay that follows the outbox and the projection consumer.
"""

import os

from celery import Celery

from entrypoints.worker import Companions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "techbank_site.settings")

app = Celery("techbank_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(Companions)
