"""What reaches the public: unpaid answers never do, and errors only as fixed messages.

A job's link is its only key, so anyone holding it reads the page and status.json: they show
progress (tokens so far, time elapsed) until the invoice is paid, and a plain message per
outcome, never the AI provider's words or the skill's schema.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import outcomes
from jobs.generation import job_generate
from jobs.models import Job
from marketplace.models import PaymentMode
from tests.conftest import paid
from tests.factories import JsonSkillFactory, ProviderFactory, SkillFactory, order

pytestmark = pytest.mark.django_db

PARTIAL = "SECRET-PARTIAL-ANSWER"
RESULT = "SECRET-FINAL-ANSWER"


def public_views(client, job: Job) -> dict[str, str]:
    """Return what anyone with the job's link receives: its page and its status.json."""
    return {
        "page": client.get(job.get_absolute_url()).content.decode(),
        "status.json": client.get(reverse("jobs:status", args=[job.public_id])).content.decode(),
    }


def status(client, job: Job) -> dict:
    return client.get(reverse("jobs:status", args=[job.public_id])).json()["job"]


def pay_after_delivery_job() -> Job:
    return order(SkillFactory(payment_mode=PaymentMode.ON_COMPLETION))


def test_an_unpaid_job_streaming_shows_progress_never_its_text(client):
    job = pay_after_delivery_job()
    # What the worker writes while the answer streams in.
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.IN_PROGRESS,
        started_at=timezone.now(),
        partial_text=f"# Draft\n\n{PARTIAL}",
        output_tokens=321,
    )

    for name, body in public_views(client, job).items():
        assert PARTIAL not in body, name
    payload = status(client, job)
    assert payload["partial_text"] == ""
    assert payload["content_released"] is False
    assert payload["output_tokens"] == 321
    assert payload["elapsed_seconds"] is not None


def test_an_unpaid_delivered_job_shows_neither_its_text_nor_its_json(client):
    job = order(JsonSkillFactory(payment_mode=PaymentMode.ON_COMPLETION))
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.DELIVERED,
        started_at=timezone.now(),
        delivered_at=timezone.now(),
        output_text=f'{{"title": "{RESULT}"}}',
        output_json={"title": RESULT, "tags": [RESULT]},
        output_tokens=55,
    )

    for name, body in public_views(client, job).items():
        assert RESULT not in body, name
    page = client.get(job.get_absolute_url())
    assert page.context["result"] is None
    assert "55 output tokens" in page.content.decode()


def test_a_paid_job_streams_its_text_to_its_buyer(client):
    job = paid(order())
    # The invoice of an upfront job is paid before it runs.
    job.invoice.status = "paid"
    job.invoice.save(update_fields=["status"])
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.IN_PROGRESS, started_at=timezone.now(), partial_text=PARTIAL
    )

    assert status(client, job)["partial_text"] == PARTIAL
    assert PARTIAL in client.get(job.get_absolute_url()).content.decode()


SECRET_SCHEMA = {
    "type": "object",
    "required": ["tier"],
    "properties": {"tier": {"enum": ["platinum-secret-tier", "gold-secret-tier"]}},
}


def test_schema_errors_never_reach_the_buyer_but_reach_the_provider(client, stub, settings):
    # jsonschema's messages echo the schema's private enum values and the model's output.
    settings.GENERATION_MAX_RETRIES = 1
    provider = ProviderFactory()
    skill = JsonSkillFactory(agent__owner=provider, json_schema=SECRET_SCHEMA)
    stub.set_default('text:{"tier": "bronze-from-the-model"}')
    job = paid(order(skill))
    while job_generate(job_id=job.pk) is not None:
        pass
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED

    for name, body in public_views(client, job).items():
        for secret in ("platinum-secret-tier", "gold-secret-tier", "bronze-from-the-model"):
            assert secret not in body, (name, secret)
    assert status(client, job)["error"] == outcomes.WRONG_FORMAT
    client.force_login(type(provider)._default_manager.get(pk=provider.pk))
    admin_page = client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "platinum-secret-tier" in admin_page


@pytest.mark.parametrize(
    ("failure", "raw"),
    [
        ("status:400", "Invalid request."),
        ("status:401", "invalid x-api-key"),
        ("status:402", "Your credit balance is too low"),
        ("status:529", "Overloaded"),
        ("html:502", "nginx"),
    ],
)
def test_status_json_never_holds_the_providers_raw_error_text(client, stub, failure, raw):
    stub.script(failure)
    job = paid(order())
    job_generate(job_id=job.pk)
    job.refresh_from_db()
    assert raw in job.error_detail

    for name, body in public_views(client, job).items():
        assert raw not in body, name
        assert "req_stub" not in body, name  # the API's request ids
    assert status(client, job)["error"] in {
        outcomes.FAILED,
        outcomes.HELD,
        outcomes.RETRYING,
    }
