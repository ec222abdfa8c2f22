"""Paid jobs on a real Celery worker, PostgreSQL (or SQLite) and the Anthropic stub."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from jobs import outcomes
from jobs.generation import jobs_reap, jobs_resume_held
from jobs.models import DeadLetter, Job, JobEvent
from jobs.services import enqueue_generation
from marketplace.models import OperatorAlert
from tests.conftest import submit, wait_for
from tests.factories import JsonSkillFactory, OperatorFactory, SkillFactory, order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

DONE = {Job.Status.COMPLETED, Job.Status.FAILED}


def pay(job, chain) -> Job:
    """Pay the job's invoice on chain and submit the hash, as a buyer would."""
    submit(job, chain.transfer(job.invoice.amount_units))
    job.refresh_from_db()
    assert job.status in {Job.Status.PAID, Job.Status.IN_PROGRESS, *DONE}
    return job


def finished(job, *, timeout: float = 60) -> Job:
    def done():
        job.refresh_from_db()
        return job.status in DONE

    wait_for(done, timeout=timeout, what=f"job {job.public_id} to finish")
    return job


def kinds(job) -> list[str]:
    return list(job.events.values_list("kind", flat=True))


def test_paid_job_streams_to_a_result(worker, stub, chain):
    stub.script("slow:1.5")
    job = finished(pay(order(SkillFactory(model="claude-opus-4-1")), chain))
    assert job.status == Job.Status.COMPLETED
    assert job.output_text.startswith("#") or job.output_text
    assert job.input_tokens > 0 and job.output_tokens > 0
    assert job.partial_text == ""
    assert job.attempts == 1
    assert kinds(job) == [
        "payment-required",
        "payment-seen",
        "paid",
        "processing",
        "partial",
        "success",
    ]
    [request] = stub.requests
    assert request["model"] == "claude-opus-4-1"
    assert request["stream"] is True
    assert request["system"] == job.skill.system_prompt


@pytest.mark.parametrize(
    "failure",
    ["status:429", "status:529", "status:500", "stream-overloaded", "cut", "truncate"],
)
def test_retryable_failure_then_success_completes_once(worker, stub, chain, failure):
    stub.script(failure, "ok")
    job = finished(pay(order(), chain))
    assert job.status == Job.Status.COMPLETED
    assert job.attempts == 2
    assert len(stub.requests) == 2
    assert kinds(job).count("retrying") == 1
    assert kinds(job).count("success") == 1
    assert job.error == ""


@pytest.mark.parametrize("status", [400, 404])
def test_permanent_error_fails_at_once_with_a_dead_letter(worker, stub, chain, status):
    stub.script(f"status:{status}")
    job = finished(pay(order(), chain))
    assert job.status == Job.Status.FAILED
    assert job.attempts == 1
    assert job.error == outcomes.FAILED
    assert str(status) in job.error_detail
    assert "retrying" not in kinds(job)
    # The DeadLetter row is the record (no broker queue nobody reads).
    dead_letter = DeadLetter.objects.get(job=job)
    assert dead_letter.task_name == "jobs.run_generation"
    assert dead_letter.args == [job.pk]
    assert str(status) in dead_letter.exception


def test_exhausted_retries_dead_letter_then_admin_replay_completes(worker, stub, chain, client):
    stub.set_default("status:429")
    job = finished(pay(order(), chain))
    assert job.status == Job.Status.FAILED
    assert job.attempts == 4  # the first try and GENERATION_MAX_RETRIES=3 retries
    assert job.error == outcomes.GAVE_UP
    assert "Gave up after 4 attempts" in job.error_detail
    dead_letter = DeadLetter.objects.get(job=job)

    stub.set_default("ok")
    client.force_login(OperatorFactory())
    response = client.post(
        reverse("admin:jobs_deadletter_changelist"),
        {"action": "replay", "_selected_action": [dead_letter.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:jobs_deadletter_changelist")
    job = finished(job)
    assert job.status == Job.Status.COMPLETED
    assert kinds(job).count("success") == 1
    dead_letter.refresh_from_db()
    assert dead_letter.replayed_at is not None


def test_invalid_json_is_a_failed_attempt_then_valid_json_completes(worker, stub, chain):
    stub.script(
        "text:Sure! Here you go: not json", 'text:```json\n{"title": "Hi", "tags": ["a"]}\n```'
    )
    job = finished(pay(order(JsonSkillFactory()), chain))
    assert job.status == Job.Status.COMPLETED
    assert job.output_json == {"title": "Hi", "tags": ["a"]}
    retry = job.events.get(kind=JobEvent.Kind.RETRYING)
    assert retry.data["reason"] == "invalid_output"
    assert "no JSON" in retry.data["detail"]


def test_json_against_the_schema_fails_with_a_readable_reason(worker, stub, chain):
    stub.set_default('text:{"title": 42}')
    job = finished(pay(order(JsonSkillFactory()), chain))
    assert job.status == Job.Status.FAILED
    assert job.error == outcomes.WRONG_FORMAT
    assert "does not match the skill's schema" in job.error_detail


def test_worker_killed_mid_stream_completes_exactly_once_after_restart(worker, stub, chain):
    stub.script("slow:8", "ok")
    job = pay(order(), chain)

    def streaming():
        job.refresh_from_db()
        return job.status == Job.Status.IN_PROGRESS and job.partial_text

    wait_for(streaming, what="the stream to start")
    worker.kill()
    worker.start()
    # The lease (3 s in tests) runs out without a heartbeat; the reaper queues the job again.
    wait_for(lambda: jobs_reap() > 0, timeout=30, interval=0.5, what="the lease to expire")
    job = finished(job)
    assert job.status == Job.Status.COMPLETED
    assert job.deliveries == 2
    assert kinds(job).count("success") == 1
    assert len(stub.requests) == 2


def test_the_same_message_delivered_twice_records_one_result(worker, stub, chain):
    stub.script("slow:1")
    job = pay(order(), chain)
    enqueue_generation(job.pk)  # a redelivery of the same message
    job = finished(job)
    wait_for(lambda: worker.log.read_text().count("succeeded") >= 2, what="both deliveries")
    assert job.status == Job.Status.COMPLETED
    assert len(stub.requests) == 1
    assert kinds(job).count("success") == 1


def test_model_output_cannot_inject_script(worker, stub, chain, client):
    payload = (
        "# Result\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        '[click](javascript:alert(3)) <a href="javascript:alert(4)">x</a>\n\n'
        "<iframe src=https://evil.example></iframe> ![pixel](https://evil.example/p.png)\n\n"
        "[safe](https://example.com)"
    )
    stub.script("text:" + payload)
    job = finished(pay(order(), chain))
    html = str(client.get(job.get_absolute_url()).context["result"].html)
    elements = Elements()
    elements.feed(html)
    tags = {tag for tag, _ in elements.found}
    assert not tags & {"script", "img", "iframe", "object", "embed", "style"}
    for tag, attrs in elements.found:
        assert not [name for name, _ in attrs if name.startswith("on")], tag
        assert not any(
            (value or "").strip().lower().startswith("javascript:") for _, value in attrs
        )
    assert ("a", [("href", "https://example.com"), ("rel", "noopener noreferrer nofollow")]) in (
        elements.found
    )


class Elements(HTMLParser):
    """Collect every element and its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def test_pay_after_delivery_holds_the_result_until_the_invoice_is_paid(worker, stub, chain, client):
    skill = SkillFactory(payment_mode="on_completion")
    stub.script("text:# Bonjour")
    job = order(skill)

    def delivered():
        job.refresh_from_db()
        return job.status == Job.Status.DELIVERED

    wait_for(delivered, what="the result to be delivered")
    assert client.get(job.get_absolute_url()).context["result"] is None
    status = client.get(reverse("jobs:status", args=[job.public_id]))
    assert "Bonjour" not in status.content.decode()
    pay(job, chain)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert "Bonjour" in str(client.get(job.get_absolute_url()).context["result"].html)
    assert kinds(job)[-3:] == ["delivered", "payment-seen", "success"]


def test_a_model_call_silent_for_longer_than_the_lease_completes_once(worker, stub, chain):
    # A model may think for longer than a lease (3 s here) before its first token. Before, no
    # text meant no renewal: the reaper handed the job to a second worker, and the model was
    # called twice for one paid job.
    stub.script("silent:8")
    job = pay(order(), chain)

    def done_while_reaping():
        jobs_reap()  # the reaper runs all along, as beat would run it
        job.refresh_from_db()
        return job.status in DONE

    wait_for(done_while_reaping, timeout=60, interval=0.5, what="the silent call to finish")
    assert job.status == Job.Status.COMPLETED
    assert len(stub.requests) == 1
    assert job.deliveries == 1
    assert kinds(job).count("success") == 1


def test_an_unpaid_jobs_stream_never_reaches_its_page_or_status(worker, stub, chain, client):
    skill = SkillFactory(payment_mode="on_completion")
    stub.script("slow:4")
    job = order(skill)
    secret = "local Anthropic stub"  # a line of the stub's answer
    status_url = reverse("jobs:status", args=[job.public_id])

    def streaming():
        job.refresh_from_db()
        return job.status == Job.Status.IN_PROGRESS and secret in job.partial_text

    wait_for(streaming, what="the answer to stream in")
    for body in (client.get(status_url).content, client.get(job.get_absolute_url()).content):
        assert secret not in body.decode()
    payload = client.get(status_url).json()["job"]
    assert payload["partial_text"] == "" and payload["output_tokens"] > 0

    def delivered():
        job.refresh_from_db()
        return job.status == Job.Status.DELIVERED

    wait_for(delivered, what="the result to be delivered")
    for body in (client.get(status_url).content, client.get(job.get_absolute_url()).content):
        assert secret not in body.decode()


def test_jobs_held_by_a_refused_key_complete_once_it_works(worker, stub, chain):
    stub.refuse_key(401)
    jobs = [pay(order(), chain) for _ in range(3)]

    def held():
        return Job.objects.filter(pk__in=[j.pk for j in jobs], status=Job.Status.HELD).count()

    wait_for(lambda: held() == 3, what="the jobs to be held")
    refused_calls = len(stub.requests)
    assert refused_calls == 3  # one model call each, none retried against a refused key

    stub.accept_key()
    assert jobs_resume_held() == 3  # what beat runs every PLATFORM_PROBE_INTERVAL
    for job in jobs:
        job = finished(job)
        assert job.status == Job.Status.COMPLETED
        assert kinds(job).count("success") == 1
    assert len(stub.requests) - refused_calls == 3
    assert not OperatorAlert.objects.filter(resolved_at__isnull=True).exists()


def test_a_lost_pay_after_delivery_order_is_queued_again_and_runs(worker, stub, chain):
    from datetime import timedelta

    from django.utils import timezone

    from config.celery import app

    worker.stop()
    job = order(SkillFactory(payment_mode="on_completion"))
    with app.connection_for_write() as connection:  # the broker lost the order's message
        connection.default_channel.queue_purge("generation")
    worker.start()
    # Nothing ran it, and nothing may expire it: its invoice has no deadline before delivery.
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert job.invoice.expires_at is None

    assert jobs_reap() == 1

    def delivered():
        job.refresh_from_db()
        return job.status == Job.Status.DELIVERED

    wait_for(delivered, what="the requeued order to run")
    job.invoice.refresh_from_db()
    assert job.invoice.expires_at > timezone.now()  # the buyer's time to pay starts now
    assert len(stub.requests) == 1
