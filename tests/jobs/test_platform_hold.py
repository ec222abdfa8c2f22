"""The platform's AI key refused (401, 402, 403): paid jobs wait, operators are told, and the
jobs resume by themselves once the key works, each with one more model call.

Before, every paid job failed for good (refund due) while the key was revoked or out of credit.
"""

import pytest
from django.urls import reverse

from jobs import outcomes
from jobs.generation import job_generate, jobs_resume_held
from jobs.models import DeadLetter, Job, JobEvent
from marketplace.models import OperatorAlert
from tests.conftest import paid
from tests.factories import order

pytestmark = pytest.mark.django_db


def paid_job() -> Job:
    return paid(order())


def open_alerts():
    return OperatorAlert.objects.filter(
        kind=OperatorAlert.Kind.AI_PLATFORM, resolved_at__isnull=True
    )


@pytest.mark.parametrize("status", [401, 402, 403])
def test_a_refused_key_holds_the_job_instead_of_failing_it(stub, client, status):
    stub.refuse_key(status)
    job = paid_job()

    assert job_generate(job_id=job.pk) is None

    job.refresh_from_db()
    assert job.status == Job.Status.HELD
    assert job.claim_token is None and job.held_at is not None
    assert job.error == outcomes.HELD
    assert str(status) in job.error_detail
    assert not DeadLetter.objects.filter(job=job).exists()
    assert job.events.filter(kind=JobEvent.Kind.HELD).exists()
    [alert] = open_alerts()
    assert str(status) in alert.message
    payload = client.get(reverse("jobs:status", args=[job.public_id])).json()["job"]
    assert payload["status"] == "held" and payload["error"] == outcomes.HELD


def test_held_jobs_raise_one_alert_that_counts_them(stub):
    stub.refuse_key(401)
    for _ in range(3):
        job_generate(job_id=paid_job().pk)

    [alert] = open_alerts()
    assert alert.count == 3


def test_held_jobs_wait_while_the_key_is_still_refused(stub):
    stub.refuse_key(401)
    job = paid_job()
    job_generate(job_id=job.pk)

    assert jobs_resume_held() == 0

    job.refresh_from_db()
    assert job.status == Job.Status.HELD
    assert stub.probes == 1  # one free call to check the key, no model call
    assert len(stub.requests) == 1
    assert open_alerts().exists()


def test_held_jobs_resume_with_one_model_call_each_once_the_key_works(stub):
    stub.refuse_key(402)
    jobs = [paid_job() for _ in range(2)]
    for job in jobs:
        job_generate(job_id=job.pk)
    calls_while_refused = len(stub.requests)

    stub.accept_key()
    assert jobs_resume_held() == 2
    assert not open_alerts().exists()
    for job in jobs:
        assert job_generate(job_id=job.pk) is None  # as the queued message does

    for job in jobs:
        job.refresh_from_db()
        assert job.status == Job.Status.COMPLETED
        assert job.error == "" and job.error_detail == ""
        assert job.deliveries == 1  # a resume is not a redelivery
        assert job.events.filter(kind=JobEvent.Kind.SUCCESS).count() == 1
    assert len(stub.requests) - calls_while_refused == 2


def test_a_resume_queues_a_held_job_at_most_once_per_requeue_interval(stub):
    stub.refuse_key(401)
    job = paid_job()
    job_generate(job_id=job.pk)
    stub.accept_key()

    assert jobs_resume_held() == 1
    assert jobs_resume_held() == 0  # its message is queued; another would be a duplicate


def test_nothing_is_probed_when_no_job_waits_and_no_alert_is_open(stub):
    assert jobs_resume_held() == 0
    assert stub.probes == 0
