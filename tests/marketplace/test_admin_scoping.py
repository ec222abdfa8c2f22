"""The admin is the providers' console: a provider reaches only its own rows, by any path."""

from dataclasses import dataclass

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from jobs.models import DeadLetter, Job
from jobs.services import job_transition
from marketplace.models import Agent, Skill
from tests.conftest import log_in
from tests.factories import (
    AgentFactory,
    OperatorFactory,
    ProviderFactory,
    SkillFactory,
    UserFactory,
    order,
    skill_form_data,
)

pytestmark = pytest.mark.django_db

DENIED = {403, 404}
ADMIN_NAMES = {"agent": "marketplace_agent", "skill": "marketplace_skill", "job": "jobs_job"}
# What an intruder would post to another provider's object.
HIJACK = {
    "agent": {"name": "Hijacked"},
    "skill": {"name": "Hijacked"},
    "job": {"prompt": "Hijacked", "status": "completed"},
}


@dataclass
class Provider:
    user: object
    agent: Agent
    skill: Skill
    job: Job

    def obj(self, kind: str):
        return getattr(self, kind)


def provider_with_a_job(label: str) -> Provider:
    user = ProviderFactory()
    agent = AgentFactory(owner=user, name=f"{label} agent")
    skill = SkillFactory(agent=agent, name=f"{label} skill")
    return Provider(user=user, agent=agent, skill=skill, job=order(skill=skill))


@pytest.fixture
def alpha():
    return provider_with_a_job("Alpha")


@pytest.fixture
def bravo():
    return provider_with_a_job("Bravo")


@pytest.fixture
def as_alpha(client, alpha, bravo):
    """The test client logged in as provider Alpha, with provider Bravo's rows in the database."""
    log_in(client, alpha.user)
    return client


def snapshot(obj) -> dict:
    """Return every stored column of `obj`, read again from the database."""
    fresh = type(obj)._default_manager.get(pk=obj.pk)
    return {field.attname: getattr(fresh, field.attname) for field in fresh._meta.concrete_fields}


def agent_form_data(agent: Agent, **changes) -> dict:
    data = {
        "name": agent.name,
        "slug": agent.slug,
        "description": agent.description,
        "payout_address": agent.payout_address,
        "default_payment_mode": agent.default_payment_mode,
        "is_active": "on",
    }
    return {**data, **changes}


def job_form_data(job: Job, **changes) -> dict:
    # Every job field is read-only; the form carries only the events inline's management form.
    return {"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", **changes}


def change_form_data(kind: str, obj, **changes) -> dict:
    builders = {"agent": agent_form_data, "skill": skill_form_data, "job": job_form_data}
    return builders[kind](obj, **changes)


def admin_url(kind: str, view: str, *args) -> str:
    return reverse(f"admin:{ADMIN_NAMES[kind]}_{view}", args=args)


def result_pks(response) -> set:
    return {obj.pk for obj in response.context["cl"].result_list}


def job_label(job: Job) -> str:
    return str(job.public_id)[:8]


# ------------------------------------------------------------------------------
# Changelists
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_changelist_lists_only_its_own_rows(as_alpha, alpha, bravo, kind):
    response = as_alpha.get(admin_url(kind, "changelist"))

    assert response.status_code == 200
    assert result_pks(response) == {alpha.obj(kind).pk}
    content = response.content.decode()
    assert "Bravo" not in content
    assert job_label(bravo.job) not in content
    if kind != "job":
        assert alpha.obj(kind).name in content


@pytest.mark.parametrize(
    ("kind", "filter_on"),
    [("skill", "agent"), ("job", "skill")],
)
@pytest.mark.parametrize("facets", [False, True])
def test_provider_filtering_changelist_by_another_providers_object_shows_none_of_its_rows(
    as_alpha, bravo, kind, filter_on, facets
):
    # With a single choice Django drops the filter and lists the provider's own rows; either
    # way, none of the other provider's rows may appear.
    query = {f"{filter_on}__id__exact": bravo.obj(filter_on).pk}
    if facets:
        query["_facets"] = "True"

    response = as_alpha.get(admin_url(kind, "changelist"), query)

    assert response.status_code == 200 or 400 <= response.status_code < 500
    content = response.content.decode()
    assert "Bravo" not in content
    assert job_label(bravo.job) not in content
    if response.status_code == 200:
        assert bravo.obj(kind).pk not in result_pks(response)


def test_operator_changelists_list_every_providers_rows(client, alpha, bravo):
    log_in(client, OperatorFactory())
    changelists = {
        "admin:marketplace_agent_changelist": {alpha.agent.pk, bravo.agent.pk},
        "admin:marketplace_skill_changelist": {alpha.skill.pk, bravo.skill.pk},
        "admin:jobs_job_changelist": {alpha.job.pk, bravo.job.pk},
        "admin:payments_invoice_changelist": {alpha.job.invoice.pk, bravo.job.invoice.pk},
    }

    for url_name, expected in changelists.items():
        response = client.get(reverse(url_name))
        assert response.status_code == 200, url_name
        assert result_pks(response) == expected, url_name


# ------------------------------------------------------------------------------
# Object views: change, delete, history
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_opens_its_own_objects(as_alpha, alpha, kind):
    obj = alpha.obj(kind)

    assert as_alpha.get(admin_url(kind, "change", obj.pk)).status_code == 200
    assert as_alpha.get(admin_url(kind, "history", obj.pk)).status_code == 200


@pytest.mark.parametrize("kind", ["agent", "skill"])
def test_provider_saves_its_own_agents_and_skills(as_alpha, alpha, kind):
    """The same form data that is refused on another provider's object is valid on one's own."""
    obj = alpha.obj(kind)

    response = as_alpha.post(
        admin_url(kind, "change", obj.pk), change_form_data(kind, obj, name="Renamed")
    )

    assert response.status_code == 302
    assert snapshot(obj)["name"] == "Renamed"


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_cannot_view_another_providers_change_form(as_alpha, bravo, kind):
    response = as_alpha.get(admin_url(kind, "change", bravo.obj(kind).pk))

    assert response.status_code in DENIED
    assert "Bravo" not in response.content.decode()


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_cannot_change_another_providers_object(as_alpha, bravo, kind):
    obj = bravo.obj(kind)
    before = snapshot(obj)

    response = as_alpha.post(
        admin_url(kind, "change", obj.pk), change_form_data(kind, obj, **HIJACK[kind])
    )

    assert response.status_code in DENIED
    assert snapshot(obj) == before


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_cannot_view_another_providers_delete_page(as_alpha, bravo, kind):
    response = as_alpha.get(admin_url(kind, "delete", bravo.obj(kind).pk))

    assert response.status_code in DENIED
    assert "Bravo" not in response.content.decode()


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_cannot_delete_another_providers_object(as_alpha, bravo, kind):
    obj = bravo.obj(kind)
    before = snapshot(obj)

    response = as_alpha.post(admin_url(kind, "delete", obj.pk), {"post": "yes"})

    assert response.status_code in DENIED
    assert snapshot(obj) == before


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_cannot_read_another_providers_object_history(as_alpha, bravo, kind):
    response = as_alpha.get(admin_url(kind, "history", bravo.obj(kind).pk))

    assert response.status_code in DENIED
    assert "Bravo" not in response.content.decode()


@pytest.mark.parametrize("kind", ["agent", "skill"])
def test_provider_bulk_delete_action_skips_another_providers_objects(as_alpha, bravo, kind):
    obj = bravo.obj(kind)
    if kind == "skill":
        # A skill with jobs is protected; give the action one it could delete.
        obj = SkillFactory(agent=bravo.agent, name="Bravo spare skill")
    before = snapshot(obj)

    as_alpha.post(
        admin_url(kind, "changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [obj.pk], "post": "yes"},
    )

    assert snapshot(obj) == before


def view_on_site_url(obj) -> str:
    content_type = ContentType.objects.get_for_model(obj)
    return reverse("admin:view_on_site", args=[content_type.pk, obj.pk])


def test_provider_view_on_site_redirects_for_its_own_job(as_alpha, alpha):
    response = as_alpha.get(view_on_site_url(alpha.job))

    assert response.status_code == 302
    assert response["Location"].endswith(alpha.job.get_absolute_url())


@pytest.mark.parametrize("kind", ["agent", "skill", "job"])
def test_provider_view_on_site_does_not_reveal_another_providers_object(as_alpha, bravo, kind):
    # A job's page is reached by its UUID alone, so redirecting to it hands over the buyer's
    # link: the prompt, the invoice and, once paid, the result.
    obj = bravo.obj(kind)

    response = as_alpha.get(view_on_site_url(obj))

    assert response.status_code in DENIED
    assert obj.get_absolute_url() not in response.get("Location", "")


# ------------------------------------------------------------------------------
# Foreign keys and autocomplete
# ------------------------------------------------------------------------------


def test_provider_skill_add_form_offers_only_its_own_agents(as_alpha, alpha):
    second = AgentFactory(owner=alpha.user, name="Alpha second agent")

    response = as_alpha.get(reverse("admin:marketplace_skill_add"))

    assert response.status_code == 200
    choices = response.context["adminform"].form.fields["agent"].queryset
    assert {agent.pk for agent in choices} == {alpha.agent.pk, second.pk}


def test_provider_adding_a_skill_to_another_providers_agent_is_rejected(as_alpha, alpha, bravo):
    template = SkillFactory.build(agent=bravo.agent, name="Planted skill")

    response = as_alpha.post(reverse("admin:marketplace_skill_add"), skill_form_data(template))

    assert response.status_code == 200
    assert "agent" in response.context["adminform"].form.errors
    assert not Skill.objects.filter(name="Planted skill").exists()
    assert list(bravo.agent.skills.all()) == [bravo.skill]


def test_provider_moving_its_skill_to_another_providers_agent_is_rejected(as_alpha, alpha, bravo):
    before = snapshot(alpha.skill)

    response = as_alpha.post(
        admin_url("skill", "change", alpha.skill.pk),
        skill_form_data(alpha.skill, agent=bravo.agent.pk),
    )

    assert response.status_code == 200
    assert "agent" in response.context["adminform"].form.errors
    assert snapshot(alpha.skill) == before


def test_provider_agent_autocomplete_returns_only_its_own_agents(as_alpha, alpha):
    second = AgentFactory(owner=alpha.user, name="Alpha second agent")

    response = as_alpha.get(
        reverse("admin:autocomplete"),
        {"app_label": "marketplace", "model_name": "skill", "field_name": "agent", "term": ""},
    )

    assert response.status_code == 200
    ids = {result["id"] for result in response.json()["results"]}
    assert ids == {str(alpha.agent.pk), str(second.pk)}


def test_provider_agent_autocomplete_search_does_not_find_another_providers_agent(as_alpha):
    response = as_alpha.get(
        reverse("admin:autocomplete"),
        {"app_label": "marketplace", "model_name": "skill", "field_name": "agent", "term": "Bravo"},
    )

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_provider_cannot_autocomplete_users_through_the_agent_owner_field(as_alpha, bravo):
    response = as_alpha.get(
        reverse("admin:autocomplete"),
        {"app_label": "marketplace", "model_name": "agent", "field_name": "owner", "term": ""},
    )

    assert response.status_code == 403
    assert bravo.user.username not in response.content.decode()


# ------------------------------------------------------------------------------
# Agent ownership
# ------------------------------------------------------------------------------


def test_provider_agent_add_form_has_no_owner_field(as_alpha):
    response = as_alpha.get(reverse("admin:marketplace_agent_add"))

    assert response.status_code == 200
    assert "owner" not in response.context["adminform"].form.fields


def test_provider_adding_an_agent_owns_it_even_when_posting_another_owner(as_alpha, alpha, bravo):
    template = AgentFactory.build(name="Fresh agent", slug="fresh-agent")

    response = as_alpha.post(
        reverse("admin:marketplace_agent_add"), agent_form_data(template, owner=bravo.user.pk)
    )

    assert response.status_code == 302
    assert Agent.objects.get(slug="fresh-agent").owner == alpha.user


def test_provider_changing_its_agent_cannot_hand_it_to_another_provider(as_alpha, alpha, bravo):
    response = as_alpha.post(
        admin_url("agent", "change", alpha.agent.pk),
        agent_form_data(alpha.agent, owner=bravo.user.pk),
    )

    assert response.status_code == 302
    assert snapshot(alpha.agent)["owner_id"] == alpha.user.pk


# ------------------------------------------------------------------------------
# Operators' pages and actions
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:payments_invoice_changelist",
        "admin:payments_payment_changelist",
        "admin:jobs_deadletter_changelist",
    ],
)
def test_provider_cannot_open_operator_only_changelists(as_alpha, url_name):
    assert as_alpha.get(reverse(url_name)).status_code == 403


def test_provider_cannot_open_the_invoice_of_its_own_job(as_alpha, alpha):
    response = as_alpha.get(reverse("admin:payments_invoice_change", args=[alpha.job.invoice.pk]))

    assert response.status_code == 403


def test_provider_cannot_open_a_dead_letter_of_its_own_job(as_alpha, alpha):
    dead_letter = DeadLetter.objects.create(
        job=alpha.job, task_name="jobs.run_generation", args=[alpha.job.pk], exception="boom"
    )

    response = as_alpha.get(reverse("admin:jobs_deadletter_change", args=[dead_letter.pk]))

    assert response.status_code == 403


def failed(job: Job) -> Job:
    job_transition(job=job, to=Job.Status.PAID)
    return job_transition(job=job, to=Job.Status.FAILED, error="The model gave up.")


def offered_actions(response) -> set:
    action_form = response.context["action_form"]
    if action_form is None:
        return set()
    return {name for name, _ in action_form.fields["action"].choices if name}


def test_provider_is_not_offered_the_retry_and_refund_actions(as_alpha, alpha):
    failed(alpha.job)

    response = as_alpha.get(reverse("admin:jobs_job_changelist"))

    assert response.status_code == 200
    assert offered_actions(response).isdisjoint({"retry_jobs", "refund_jobs"})


def test_operator_is_offered_the_retry_and_refund_actions(client, alpha):
    log_in(client, OperatorFactory())

    response = client.get(reverse("admin:jobs_job_changelist"))

    assert {"retry_jobs", "refund_jobs"} <= offered_actions(response)


@pytest.mark.parametrize("action", ["retry_jobs", "refund_jobs"])
def test_provider_posting_a_job_action_changes_nothing(as_alpha, alpha, action):
    job = failed(alpha.job)
    before = snapshot(job)

    as_alpha.post(
        reverse("admin:jobs_job_changelist"), {"action": action, ACTION_CHECKBOX_NAME: [job.pk]}
    )

    assert snapshot(job) == before


def test_operator_refund_action_refunds_a_completed_job(client, alpha, chain):
    """The action POST the provider test sends does act, when an operator sends it."""
    job = completed(alpha.job, chain)
    log_in(client, OperatorFactory())

    response = client.post(
        reverse("admin:jobs_job_changelist"),
        {"action": "refund_jobs", ACTION_CHECKBOX_NAME: [job.pk]},
    )

    assert response.status_code == 302
    assert snapshot(job)["status"] == Job.Status.REFUNDED
    [refund] = job.invoice.refunds.all()
    assert refund.amount_units == job.invoice.amount_units


def completed(job: Job, chain) -> Job:
    """Pay the job on chain and record its result, as the worker would."""
    from jobs.generation import _complete, job_claim
    from jobs.output import Output
    from tests.conftest import pay

    pay(job, chain)
    claimed, token = job_claim(job_id=job.pk)
    _complete(claimed, token, Output(text="Done", data=None), 1, 1)
    job.refresh_from_db()
    return job


# ------------------------------------------------------------------------------
# Buyers stay anonymous to providers
# ------------------------------------------------------------------------------


@pytest.fixture
def job_ordered_by_a_signed_in_operator(alpha):
    """An operator signs in on the site and orders provider Alpha's skill from its page."""
    buyer = OperatorFactory(username="op-buyer-7f3a")
    browser = Client()
    log_in(browser, buyer)
    browser.post(alpha.skill.get_absolute_url(), {"prompt": "Order placed by an operator."})
    job = Job.objects.get(prompt="Order placed by an operator.")
    return job, browser.cookies["sessionid"].value


def test_provider_admin_job_page_shows_neither_the_buyers_session_nor_its_name(
    as_alpha, job_ordered_by_a_signed_in_operator
):
    # With the buyer's session key a provider could set the cookie and be signed in as the
    # operator who ordered its skill.
    job, session_key = job_ordered_by_a_signed_in_operator

    pages = [
        as_alpha.get(admin_url("job", "change", job.pk)),
        as_alpha.get(admin_url("job", "changelist")),
        as_alpha.get(admin_url("job", "history", job.pk)),
    ]

    for response in pages:
        assert response.status_code == 200
        content = response.content.decode()
        assert session_key not in content
        assert "op-buyer-7f3a" not in content
    assert "buyer" not in pages[0].context["adminform"].form.fields
    assert session_key not in str(snapshot(job))


def test_operator_admin_job_page_shows_the_buyer(client, job_ordered_by_a_signed_in_operator):
    job, session_key = job_ordered_by_a_signed_in_operator
    log_in(client, OperatorFactory())

    content = client.get(admin_url("job", "change", job.pk)).content.decode()

    assert "op-buyer-7f3a" in content
    assert session_key not in content


def test_my_jobs_lists_a_browsers_orders_without_its_session_key(client, alpha):
    client.post(alpha.skill.get_absolute_url(), {"prompt": "Remember me."})
    job = Job.objects.get(prompt="Remember me.")

    ordered_with = client.cookies["sessionid"].value
    # Signing in afterwards cycles the session key; the browser's own token stays with it.
    client.force_login(UserFactory())
    listed = client.get(reverse("jobs:mine")).context["jobs"]

    assert client.cookies["sessionid"].value != ordered_with
    assert listed == [job]
    assert job.buyer_browser and ordered_with not in str(snapshot(job))
