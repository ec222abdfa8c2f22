"""Celery tasks for jobs. Names are fixed strings: a contract with messages already queued."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="jobs.run_generation", max_retries=None)
def run_generation(self, job_id: int) -> None:
    """Run a paid job. The service counts attempts and deliveries in the job row itself."""
    from jobs.generation import job_generate

    outcome = job_generate(job_id=job_id, task_id=self.request.id or "")
    if outcome is not None:
        raise self.retry(countdown=outcome.countdown)


@shared_task(name="jobs.dead_letter")
def dead_letter(*, dead_letter_id: int, task_name: str, args: list, exception: str) -> None:
    """A record on the dead_letter queue. The DeadLetter row is the source of truth."""
    logger.error("Dead letter %s: %s%s failed: %s", dead_letter_id, task_name, args, exception)


@shared_task(name="jobs.reap")
def reap() -> int:
    from jobs.generation import jobs_reap

    return jobs_reap()
