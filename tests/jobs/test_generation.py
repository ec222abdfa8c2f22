"""The generation service in-process, against the Anthropic stub (no worker needed)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import outcomes
from jobs.generation import job_claim, job_generate, jobs_reap
from jobs.models import DeadLetter, Job
from jobs.output import EmptyAnswer, InvalidOutput, extract_json, parse_output
from tests.conftest import paid
from tests.factories import JsonSkillFactory, order

pytestmark = pytest.mark.django_db


def paid_job(skill=None) -> Job:
    return paid(order(skill) if skill else order())


def test_a_claimed_job_cannot_be_claimed_again():
    job = paid_job()
    assert job_claim(job_id=job.pk) is not None
    assert job_claim(job_id=job.pk) is None


def test_a_job_whose_lease_ran_out_can_be_reclaimed():
    job = paid_job()
    job_claim(job_id=job.pk)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    claimed, _ = job_claim(job_id=job.pk)
    assert claimed.deliveries == 2


def test_a_job_that_keeps_killing_its_worker_is_dead_lettered(settings, stub):
    settings.GENERATION_MAX_DELIVERIES = 3
    job = paid_job()
    # Three workers claimed it and died: a claim is left with its lease run out.
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.IN_PROGRESS,
        deliveries=3,
        claim_token=uuid.uuid4(),
        lease_expires_at=timezone.now(),
    )
    assert job_generate(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == outcomes.FAILED
    assert "stopped its worker 3 times" in job.error_detail
    assert DeadLetter.objects.filter(job=job).exists()
    assert stub.requests == []  # the poisoned job never reached the model again


def test_a_retryable_error_asks_for_a_retry_and_releases_the_claim(stub):
    stub.script("status:529")
    job = paid_job()
    retry = job_generate(job_id=job.pk)
    job.refresh_from_db()
    assert retry is not None and retry.countdown >= 0
    assert job.status == Job.Status.IN_PROGRESS
    assert job.claim_token is None
    assert job.error == outcomes.RETRYING
    assert "529" in job.error_detail and "overloaded" in job.error_detail
    assert job_generate(job_id=job.pk) is None  # the retry claims it and completes
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.deliveries == 1  # a retry is not a redelivery


def test_reaper_requeues_paid_jobs_whose_message_was_lost(settings):
    settings.REQUEUE_PAID_AFTER = 300
    waiting, lost = paid_job(), paid_job()
    Job.objects.filter(pk=waiting.pk).update(paid_at=timezone.now() - timedelta(seconds=60))
    Job.objects.filter(pk=lost.pk).update(paid_at=timezone.now() - timedelta(minutes=10))
    assert jobs_reap() == 1  # only the one waiting longer than any queue would hold it


def test_reaper_leaves_healthy_running_jobs_alone():
    job = paid_job()
    job_claim(job_id=job.pk)
    assert jobs_reap() == 0


def test_json_is_extracted_from_fences_and_prose():
    assert extract_json('Here:\n```json\n{"a": 1}\n```\nDone.') == {"a": 1}
    assert extract_json("Result: [1, 2] as asked") == [1, 2]
    with pytest.raises(InvalidOutput):
        extract_json("no json here {broken")


def test_json_output_is_validated_against_the_schema():
    skill = JsonSkillFactory.build()
    assert parse_output(skill, '{"title": "x", "tags": []}').data == {"title": "x", "tags": []}
    with pytest.raises(InvalidOutput, match="at tags"):
        parse_output(skill, '{"title": "x", "tags": "no"}')


def test_empty_output_is_an_empty_answer():
    with pytest.raises(EmptyAnswer):
        parse_output(JsonSkillFactory.build(output_format="markdown"), "   ")
