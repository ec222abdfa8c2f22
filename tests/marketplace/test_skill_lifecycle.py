"""A skill starts as a draft; a test run (unbilled, through the worker's own path) must pass
on the version saved before it is published; changing what decides its answers unpublishes it."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from jobs.errors import InvalidTransition, OrderError, SkillTestRefused
from jobs.generation import job_generate
from jobs.models import DeadLetter, Job
from jobs.services import job_refund, job_retry, job_test_run
from marketplace.errors import SkillNotReady
from marketplace.models import Skill
from marketplace.services import skill_publish
from payments.models import Invoice, OnchainTransfer
from tests.conftest import log_in
from tests.factories import (
    DraftSkillFactory,
    JsonSkillFactory,
    OperatorFactory,
    ProviderFactory,
    SkillFactory,
    order,
    skill_form_data,
)

pytestmark = pytest.mark.django_db

SAMPLE = "Summarise: we ship on Friday, Ada owns the release notes."


def run(job: Job) -> Job:
    """Run the job through the worker's own function, retries included, as the task would."""
    while job_generate(job_id=job.pk) is not None:
        pass
    job.refresh_from_db()
    return job


def after_a_test_run(skill: Skill) -> Job:
    job = run(job_test_run(skill=skill, prompt=SAMPLE, user=skill.agent.owner))
    skill.refresh_from_db()
    return job


def catalog_names(client) -> list[str]:
    """The names of the skills the catalog lists."""
    groups = client.get(reverse("marketplace:catalog")).context["groups"]
    return [skill.name for _, skills in groups for skill in skills]


# ------------------------------------------------------------------------------
# Drafts
# ------------------------------------------------------------------------------


def test_a_skill_added_in_the_admin_is_a_draft_absent_from_the_catalog(client):
    provider = ProviderFactory()
    template = SkillFactory.build(agent=SkillFactory(agent__owner=provider).agent)
    log_in(client, provider)

    response = client.post(
        reverse("admin:marketplace_skill_add"),
        skill_form_data(template, name="Fresh Draft", slug="fresh-draft", service_key="fresh"),
    )

    assert response.status_code == 302
    skill = Skill.objects.get(slug="fresh-draft")
    assert skill.status == Skill.Status.DRAFT
    assert "Fresh Draft" not in catalog_names(client)
    assert client.get(skill.get_absolute_url()).status_code == 404


def test_a_draft_cannot_be_ordered():
    with pytest.raises(OrderError, match="not available"):
        order(DraftSkillFactory())


def test_a_draft_is_not_on_its_agents_page(client):
    draft = DraftSkillFactory(name="Hidden Draft")

    page = client.get(draft.agent.get_absolute_url()).content.decode()

    assert "Hidden Draft" not in page


def test_the_demo_seed_lists_a_live_catalog(client, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())

    assert Skill.objects.listed().count() == Skill.objects.count() > 0
    assert "Tighten my prose" in catalog_names(client)


# ------------------------------------------------------------------------------
# Test runs
# ------------------------------------------------------------------------------


def test_a_test_run_completes_through_the_worker_unbilled(stub):
    skill = DraftSkillFactory()

    job = after_a_test_run(skill)

    assert job.is_test and job.invoice is None
    assert job.status == Job.Status.COMPLETED
    assert "Stub answer" in job.output_text
    assert job.skill_fingerprint == skill.fingerprint == skill.tested_fingerprint
    assert not Invoice.objects.exists()


def test_a_test_run_has_no_public_page_and_no_status(client, stub):
    job = after_a_test_run(DraftSkillFactory())

    assert client.get(job.get_absolute_url()).status_code == 404
    assert client.get(reverse("jobs:status", args=[job.public_id])).status_code == 404


def test_a_failed_test_run_is_not_refunded_nor_dead_lettered(stub):
    stub.script("status:400")
    skill = DraftSkillFactory()

    job = after_a_test_run(skill)

    assert job.status == Job.Status.FAILED
    assert job.error_detail  # the provider reads why on the job's admin page
    assert not DeadLetter.objects.exists()
    assert not OnchainTransfer.objects.exists()
    assert skill.tested_fingerprint == ""


def test_a_test_run_is_never_retried_nor_refunded(stub):
    job = after_a_test_run(DraftSkillFactory())

    with pytest.raises(InvalidTransition, match="test run"):
        job_refund(job=job, user=OperatorFactory())
    job.status = Job.Status.FAILED
    with pytest.raises(InvalidTransition, match="test run"):
        job_retry(job=job)


def test_only_a_test_job_may_lack_an_invoice():
    job = order()

    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(invoice=None)


def test_test_runs_are_limited_per_provider_across_all_its_skills(settings):
    settings.PROVIDER_TEST_RUNS_PER_DAY = 2
    provider = ProviderFactory()
    for _ in range(2):
        job_test_run(skill=DraftSkillFactory(agent__owner=provider), prompt=SAMPLE, user=provider)

    with pytest.raises(SkillTestRefused, match="2 test runs"):
        job_test_run(skill=DraftSkillFactory(agent__owner=provider), prompt=SAMPLE, user=provider)
    # Another provider's allowance is its own.
    job_test_run(skill=DraftSkillFactory(), prompt=SAMPLE, user=provider)


def test_yesterdays_test_runs_do_not_count_today(settings):
    settings.PROVIDER_TEST_RUNS_PER_DAY = 1
    skill = DraftSkillFactory()
    job = job_test_run(skill=skill, prompt=SAMPLE, user=skill.agent.owner)
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at.replace(year=2020))

    job_test_run(skill=skill, prompt=SAMPLE, user=skill.agent.owner)


def test_a_test_run_needs_a_sample_input():
    skill = DraftSkillFactory()

    with pytest.raises(OrderError, match="sample input"):
        job_test_run(skill=skill, prompt="   ", user=skill.agent.owner)


def test_the_test_run_button_starts_a_test_run_and_opens_its_job(client):
    provider = ProviderFactory()
    skill = DraftSkillFactory(agent__owner=provider)
    log_in(client, provider)

    response = client.post(reverse("admin:jobs_job_test_run", args=[skill.pk]), {"prompt": SAMPLE})

    job = Job.objects.get(skill=skill)
    assert job.is_test and job.status == Job.Status.PAID
    assert response.status_code == 302
    assert response.url == reverse("admin:jobs_job_change", args=[job.pk])
    page = client.get(response.url).content.decode()
    assert "Test run" in page and "refreshes" in page


def test_another_provider_can_neither_start_nor_see_a_test_run(client, stub):
    skill = DraftSkillFactory()
    job = after_a_test_run(skill)
    log_in(client, ProviderFactory())

    start = client.post(reverse("admin:jobs_job_test_run", args=[skill.pk]), {"prompt": SAMPLE})
    page = client.get(reverse("admin:jobs_job_change", args=[job.pk]))

    assert start.status_code == 404
    assert page.status_code == 404
    assert Job.objects.filter(skill=skill).count() == 1


def test_my_jobs_never_lists_a_test_run(client, stub):
    provider = ProviderFactory()
    job = after_a_test_run(DraftSkillFactory(agent__owner=provider))
    log_in(client, provider)

    page = client.get(reverse("jobs:mine")).content.decode()

    assert str(job.public_id)[:8] not in page


# ------------------------------------------------------------------------------
# Publishing
# ------------------------------------------------------------------------------


def test_publishing_without_a_passing_test_run_is_refused():
    skill = DraftSkillFactory()

    with pytest.raises(SkillNotReady, match="test run"):
        skill_publish(skill=skill)
    skill.refresh_from_db()
    assert skill.status == Skill.Status.DRAFT


def test_a_passing_test_run_lets_the_provider_publish_from_the_admin(client, stub):
    provider = ProviderFactory()
    skill = DraftSkillFactory(agent__owner=provider, name="Ready Skill")
    after_a_test_run(skill)
    log_in(client, provider)

    page = client.get(reverse("admin:marketplace_skill_change", args=[skill.pk])).content.decode()
    response = client.post(reverse("admin:marketplace_skill_publish", args=[skill.pk]))

    assert 'id="publish-skill"' in page
    assert response.status_code == 302
    skill.refresh_from_db()
    assert skill.status == Skill.Status.LIVE and skill.published_at is not None
    assert "Ready Skill" in catalog_names(client)
    order(skill)  # buyers can order it now


def test_publishing_takes_a_post(client, stub):
    skill = DraftSkillFactory()
    after_a_test_run(skill)
    log_in(client, skill.agent.owner)

    response = client.get(reverse("admin:marketplace_skill_publish", args=[skill.pk]))

    assert response.status_code == 405
    skill.refresh_from_db()
    assert skill.status == Skill.Status.DRAFT


@pytest.mark.parametrize(
    "change",
    [
        {"system_prompt": "Now answer in French."},
        {"model": "claude-sonnet-4-5"},
        {"output_format": "json"},
    ],
)
def test_a_test_run_of_an_earlier_version_does_not_publish_this_one(stub, change):
    skill = DraftSkillFactory()
    after_a_test_run(skill)
    for name, value in change.items():
        setattr(skill, name, value)
    skill.save()

    with pytest.raises(SkillNotReady):
        skill_publish(skill=skill)


def test_a_changed_schema_needs_a_new_test_run(stub):
    stub.set_default('text:{"title": "Notes", "tags": ["a"]}')
    skill = JsonSkillFactory(status=Skill.Status.DRAFT)
    after_a_test_run(skill)
    skill.json_schema = {**skill.json_schema, "required": ["title"]}
    skill.save()

    with pytest.raises(SkillNotReady):
        skill_publish(skill=skill)


def test_changing_a_live_skills_prompt_in_the_admin_takes_it_back_to_draft(client):
    provider = ProviderFactory()
    skill = SkillFactory(agent__owner=provider, name="Live Skill")
    log_in(client, provider)

    response = client.post(
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        skill_form_data(skill, system_prompt="A different prompt."),
        follow=True,
    )

    skill.refresh_from_db()
    assert skill.status == Skill.Status.DRAFT
    assert "draft again" in response.content.decode()
    assert "Live Skill" not in catalog_names(client)


def test_renaming_a_live_skill_keeps_it_live(client):
    provider = ProviderFactory()
    skill = SkillFactory(agent__owner=provider)
    log_in(client, provider)

    client.post(
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        skill_form_data(skill, name="A Better Name"),
    )

    skill.refresh_from_db()
    assert skill.name == "A Better Name" and skill.status == Skill.Status.LIVE


def test_a_browsers_line_endings_are_not_a_change_of_prompt(client):
    provider = ProviderFactory()
    skill = SkillFactory(agent__owner=provider, system_prompt="Line one.\nLine two.")
    log_in(client, provider)

    client.post(
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        skill_form_data(skill, system_prompt="Line one.\r\nLine two.", name="Renamed"),
    )

    skill.refresh_from_db()
    assert skill.name == "Renamed" and skill.status == Skill.Status.LIVE


def test_back_to_draft_takes_a_live_skill_out_of_the_catalog(client):
    provider = ProviderFactory()
    skill = SkillFactory(agent__owner=provider, name="Withdrawn Skill")
    log_in(client, provider)

    client.post(reverse("admin:marketplace_skill_unpublish", args=[skill.pk]))

    skill.refresh_from_db()
    assert skill.status == Skill.Status.DRAFT
    assert "Withdrawn Skill" not in catalog_names(client)


def test_another_provider_cannot_publish_a_skill(client, stub):
    skill = DraftSkillFactory()
    after_a_test_run(skill)
    log_in(client, ProviderFactory())

    response = client.post(reverse("admin:marketplace_skill_publish", args=[skill.pk]))

    assert response.status_code == 404
    skill.refresh_from_db()
    assert skill.status == Skill.Status.DRAFT
