"""Every fault around the model call, the checks and the save ends in one classified outcome.

In-process against the Anthropic stub: each test is a failure the model or its provider can
cause, and what the job does about it. None leaves the job claimed for its lease to lapse.
"""

import pytest
from django.db import DataError

from jobs import outcomes
from jobs.generation import CUT_NOTE, job_generate
from jobs.models import DeadLetter, Job, JobEvent
from jobs.outcomes import Kind, classify
from marketplace.models import Skill
from tests.conftest import paid
from tests.factories import JsonSkillFactory, SkillFactory, order

pytestmark = pytest.mark.django_db


def paid_job(skill=None) -> Job:
    return paid(order(skill or SkillFactory()))


def run(job: Job, *, limit: int = 10) -> list:
    """Run the job's attempts in this process as the task would; return each attempt's Retry."""
    retries = []
    for _ in range(limit):
        retry = job_generate(job_id=job.pk)
        if retry is None:
            break
        retries.append(retry)
    job.refresh_from_db()
    return retries


def kinds(job: Job) -> list[str]:
    return list(job.events.values_list("kind", flat=True))


@pytest.mark.parametrize("failure", ["html:502", "error-text:500", "error-text:503"])
def test_an_error_body_that_is_not_the_apis_is_retried_with_backoff(stub, failure):
    # An HTML 502 from a proxy, or {"error": "text"}, crashed the classifier: the job stayed
    # claimed, the lease lapsed and the model was called again and again.
    stub.script(failure, "ok")
    job = paid_job()

    retry = job_generate(job_id=job.pk)

    job.refresh_from_db()
    assert retry is not None and retry.countdown > 0
    assert job.claim_token is None
    assert job.error == outcomes.RETRYING
    assert failure.split(":")[1] in job.error_detail
    assert job_generate(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert len(stub.requests) == 2


def test_nul_bytes_in_the_output_are_removed_before_saving(stub):
    stub.script("text:# Title\x00\n\nBody\x00 text")
    job = paid_job()

    run(job)

    assert job.status == Job.Status.COMPLETED
    assert job.output_text == "# Title\n\nBody text"
    assert len(stub.requests) == 1


def test_a_nul_escape_inside_json_output_is_removed_before_saving(stub):
    stub.script('text:{"title": "a\\u0000b", "tags": ["x\\u0000"]}')
    job = paid_job(JsonSkillFactory())

    run(job)

    assert job.status == Job.Status.COMPLETED
    assert job.output_json == {"title": "ab", "tags": ["x"]}


def test_markdown_cut_at_max_tokens_is_delivered_with_a_visible_note(stub):
    stub.script("max-tokens:## Part one\n\nThe answer goes on and")
    job = paid_job(SkillFactory(max_output_tokens=400))

    run(job)

    assert job.status == Job.Status.COMPLETED
    assert job.output_text.startswith("## Part one\n\nThe answer goes on and")
    assert job.output_text.endswith(CUT_NOTE.format(limit=400))
    assert "limit of 400 output tokens" in job.output_text


def test_json_cut_at_max_tokens_fails_for_good_instead_of_passing_an_inner_object(stub):
    # Before, the first inner object of the cut document was delivered as the result.
    stub.script('max-tokens:{"summary": {"ok": true}, "items": [1, 2')
    job = paid_job(JsonSkillFactory(json_schema=None))

    retries = run(job)

    assert retries == []
    assert job.status == Job.Status.FAILED
    assert job.output_json is None
    assert job.error == outcomes.TOO_LONG
    assert "max_tokens" in job.error_detail
    assert len(stub.requests) == 1


def test_a_refusal_fails_for_good_without_a_retry(stub):
    stub.script("refusal", "ok")
    job = paid_job()

    retries = run(job)

    assert retries == []
    assert job.status == Job.Status.FAILED
    assert job.output_text == ""
    assert job.error == outcomes.REFUSED
    assert "retrying" not in kinds(job)
    assert len(stub.requests) == 1
    assert DeadLetter.objects.filter(job=job).exists()


def test_an_empty_answer_gets_one_retry_then_succeeds(stub):
    stub.script("text:", "ok")
    job = paid_job()

    retries = run(job)

    assert len(retries) == 1
    assert job.status == Job.Status.COMPLETED
    assert len(stub.requests) == 2


def test_an_empty_answer_gets_only_one_retry(stub):
    # Before, an empty answer was retried four times, five model calls for nothing.
    stub.set_default("text:")
    job = paid_job()

    retries = run(job)

    assert len(retries) == 1
    assert job.status == Job.Status.FAILED
    assert job.error == outcomes.EMPTY
    assert len(stub.requests) == 2


def test_a_schema_that_cannot_run_fails_the_job_for_good_on_the_first_answer(stub):
    # Saved before today's checks (or past them): {"$ref": "#"} made validation recurse
    # until RecursionError, which nothing caught, and the job looped.
    stub.set_default('text:{"a": 1}')
    job = paid_job(JsonSkillFactory())
    Skill.objects.filter(pk=job.skill_id).update(json_schema={"$ref": "#"})

    retries = run(job)

    assert retries == []
    assert job.status == Job.Status.FAILED
    assert job.error == outcomes.SKILL_BROKEN
    assert "cycle" in job.error_detail
    assert len(stub.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 413])
def test_a_permanent_api_error_fails_for_good_with_one_call(stub, status):
    stub.set_default(f"status:{status}")
    job = paid_job()

    retries = run(job)

    assert retries == []
    assert job.status == Job.Status.FAILED
    assert job.error == outcomes.FAILED
    assert str(status) in job.error_detail
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RecursionError("maximum recursion depth exceeded"), Kind.FAIL),
        (ValueError("odd"), Kind.FAIL),
        (AttributeError("'str' object has no attribute 'get'"), Kind.FAIL),
        (DataError("value too long"), Kind.FAIL),
    ],
)
def test_any_unexpected_exception_is_classified_as_a_failure_for_good(error, kind):
    outcome = classify(error)

    assert outcome.kind == kind
    assert outcome.public == outcomes.FAILED
    assert str(error) in outcome.detail


def test_retries_are_recorded_with_their_reason_and_detail_for_the_admin(stub):
    stub.script("status:529", "ok")
    job = paid_job()

    run(job)

    event = job.events.get(kind=JobEvent.Kind.RETRYING)
    assert event.message.startswith(outcomes.RETRYING)
    assert event.data["reason"] == "transient"
    assert "529" in event.data["detail"] and "529" not in event.message
