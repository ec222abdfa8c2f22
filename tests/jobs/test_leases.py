"""A worker holds its job only while its claim stands: lose the claim, and the call ends."""

import threading
import uuid

import pytest
from django.db import connection

from jobs.generation import job_generate
from jobs.models import Job
from jobs.services import job_transition
from tests.conftest import paid, wait_for
from tests.factories import order

pytestmark = pytest.mark.django_db(transaction=True)


def paid_job() -> Job:
    """A paid job with no message queued: only this test's thread may run it (the session's
    Celery worker may be consuming the generation queue). The job is marked paid first, so
    the invoice's payment, made after, queues nothing."""
    return paid(job_transition(job=order(), to=Job.Status.PAID))


def generate_in_a_thread(job: Job, returned: list) -> threading.Thread:
    """Run job_generate in a thread of its own, as a worker's pool thread would."""

    def target():
        try:
            returned.append(job_generate(job_id=job.pk))
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_a_worker_that_loses_its_claim_abandons_its_silent_model_call(stub, settings):
    settings.JOB_LEASE_SECONDS = 3  # renewed every second
    stub.script("silent:120")  # the model says nothing for two minutes
    job = paid_job()
    returned = []
    worker = generate_in_a_thread(job, returned)
    wait_for(lambda: stub.requests, what="the model call to start")

    # The reaper presumed this worker dead and another worker claimed the job.
    thief = uuid.uuid4()
    Job.objects.filter(pk=job.pk).update(claim_token=thief)
    worker.join(60)

    assert not worker.is_alive(), "the worker kept its call open after losing the claim"
    assert returned == [None]
    job.refresh_from_db()
    assert job.status == Job.Status.IN_PROGRESS
    assert job.claim_token == thief  # the new holder's claim is untouched
    assert job.output_text == "" and not job.events.filter(kind="success").exists()


def test_a_silent_call_keeps_its_lease_renewed(stub, settings):
    settings.JOB_LEASE_SECONDS = 3
    stub.script("silent:5")
    job = paid_job()
    worker = generate_in_a_thread(job, [])
    wait_for(lambda: stub.requests, what="the model call to start")
    first = Job.objects.get(pk=job.pk).lease_expires_at

    def renewed():
        return Job.objects.get(pk=job.pk).lease_expires_at > first

    wait_for(renewed, timeout=30, what="the lease to be renewed while the model is silent")
    worker.join(60)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert len(stub.requests) == 1
