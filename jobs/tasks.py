"""Celery tasks for jobs. Names are fixed strings: a contract with messages already queued."""

import logging
import random

from celery import shared_task
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="jobs.run_generation", max_retries=None)
def run_generation(self, job_id: int) -> None:
    """Run a paid job. The service counts attempts and deliveries in the job row itself."""
    from jobs.generation import job_generate

    try:
        outcome = job_generate(job_id=job_id, task_id=self.request.id or "")
    except (OperationalError, InterfaceError) as error:
        # The database is out of reach (restarting, or out of connections): the job is safe in
        # its row, so try the message again soon rather than drop it for the reaper to find.
        logger.warning("Job %s: database unavailable (%s); retrying", job_id, error)
        raise self.retry(countdown=random.uniform(1, 5), exc=error) from error
    if outcome is not None:
        raise self.retry(countdown=outcome.countdown)


@shared_task(name="jobs.reap")
def reap() -> int:
    """Queue again the jobs whose message was lost or whose worker died (beat, own queue)."""
    from jobs.generation import jobs_reap

    return jobs_reap()


@shared_task(name="jobs.settle")
def settle() -> int:
    """Make the held share of jobs whose dispute window closed payable."""
    from jobs.settlement import jobs_release_earnings

    return jobs_release_earnings()


@shared_task(name="jobs.resume_held")
def resume_held() -> int:
    """Probe the platform's AI key while jobs wait for it; queue them once it works (beat)."""
    from jobs.generation import jobs_resume_held

    return jobs_resume_held()
