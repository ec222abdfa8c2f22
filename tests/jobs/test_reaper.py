"""After an outage nothing piles up: the reaper requeues a stuck job once per interval, runs on
a queue of its own, beat's entries expire, and dead letters live in the database only."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app
from jobs.generation import jobs_reap
from jobs.models import Job
from tests.conftest import paid
from tests.factories import order

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def generation_queue_size() -> int:
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare("generation").message_count


def stuck_paid_jobs(count: int) -> list[Job]:
    """Paid jobs whose message was lost ten minutes ago (a broker outage at enqueue time)."""
    jobs = [paid(order()) for _ in range(count)]
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        paid_at=timezone.now() - timedelta(minutes=10)
    )
    return jobs


def test_ten_reaper_runs_over_five_stuck_jobs_leave_at_most_five_messages(settings):
    # Before, each run queued every stuck job again: 10 runs left 55 messages.
    settings.REQUEUE_PAID_AFTER = 300
    stuck_paid_jobs(5)
    before = generation_queue_size()

    queued = [jobs_reap() for _ in range(10)]

    assert queued == [5] + [0] * 9
    assert generation_queue_size() - before <= 5


def test_a_stuck_job_is_queued_again_once_its_interval_has_passed(settings):
    settings.REQUEUE_PAID_AFTER = 300
    [job] = stuck_paid_jobs(1)
    assert jobs_reap() == 1

    Job.objects.filter(pk=job.pk).update(requeued_at=timezone.now() - timedelta(seconds=301))

    assert jobs_reap() == 1


def test_a_job_whose_worker_died_is_queued_again_once_per_interval(settings):
    job = paid(order())
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.IN_PROGRESS, lease_expires_at=timezone.now() - timedelta(seconds=5)
    )

    assert [jobs_reap() for _ in range(3)] == [1, 0, 0]


def test_every_beat_entry_expires_after_its_interval():
    # Beat's runs missed during an outage would otherwise all run when it ends.
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["options"]["expires"] == entry["schedule"], name


def test_the_reaper_has_a_queue_of_its_own():
    # On the generation queue it waited behind the very backlog it should repair.
    assert settings.CELERY_TASK_ROUTES["jobs.reap"] == {"queue": "reaper"}
    assert settings.CELERY_TASK_ROUTES["jobs.resume_held"] == {"queue": "reaper"}
    assert "reaper" in {queue.name for queue in app.conf.task_queues}


@pytest.mark.parametrize(
    "path", ["Procfile", "Procfile.dev", "tests/conftest.py", "bench/workers.py"]
)
def test_every_worker_command_line_consumes_the_reaper_queue(path):
    # Each worker's -Q list (or its default): the one that names the generation queue.
    queue_lists = re.findall(r"\b[\w,]*generation,[\w,]+", (ROOT / path).read_text())

    assert queue_lists, f"no worker queue list in {path}"
    for queues in queue_lists:
        assert "reaper" in queues.split(","), (path, queues)


def test_dead_letters_are_not_sent_to_a_broker_queue_nobody_reads():
    assert "dead_letter" not in {queue.name for queue in app.conf.task_queues}
    assert "jobs.dead_letter" not in app.tasks
    assert not any("dead_letter" in str(route) for route in settings.CELERY_TASK_ROUTES.values())
