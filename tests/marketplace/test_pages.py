from decimal import Decimal

import pytest
from django.urls import reverse

from jobs.models import Job
from marketplace.models import Skill
from payments.models import Invoice
from tests.factories import AgentFactory, JsonSkillFactory, ProviderFactory, SkillFactory

pytestmark = pytest.mark.django_db


def test_catalog_groups_skills_by_category(client):
    SkillFactory(name="Tighten prose", category=Skill.Category.WRITING)
    JsonSkillFactory(name="Extract invoice", category=Skill.Category.DATA)
    response = client.get("/")
    assert response.status_code == 200
    labels = [label for label, _ in response.context["groups"]]
    assert labels == ["Data & extraction", "Writing"]
    assert b"Tighten prose" in response.content and b"Extract invoice" in response.content


def test_catalog_search_finds_by_name_and_description(client):
    SkillFactory(name="Code review", description="Finds bugs in your diff.")
    SkillFactory(name="Launch post", description="Announces what you shipped.")
    response = client.get("/", {"q": "bugs"})
    assert b"Code review" in response.content
    assert b"Launch post" not in response.content


def test_catalog_hides_inactive_skills_and_agents(client):
    SkillFactory(name="Retired skill", is_active=False)
    SkillFactory(name="Skill of a paused agent", agent=AgentFactory(is_active=False))
    response = client.get("/")
    assert b"Retired skill" not in response.content
    assert b"paused agent" not in response.content


def test_catalog_query_count_does_not_grow_with_skills(client, django_assert_max_num_queries):
    SkillFactory.create_batch(3)
    with django_assert_max_num_queries(3) as few:
        client.get("/")
    SkillFactory.create_batch(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/")


def test_agent_page_lists_its_skills(client):
    skill = SkillFactory(name="Explain this error")
    other = SkillFactory(name="Someone else's skill")
    response = client.get(skill.agent.get_absolute_url())
    assert response.status_code == 200
    assert b"Explain this error" in response.content
    assert other.name.encode() not in response.content


def test_skill_page_shows_price_and_order_form(client):
    skill = SkillFactory(price=Decimal("1.500000"))
    response = client.get(skill.get_absolute_url())
    assert response.status_code == 200
    assert b'name="prompt"' in response.content
    assert b"1.50" in response.content


def test_unknown_skill_is_404(client):
    assert client.get("/agents/nobody/nothing/").status_code == 404


def test_order_creates_job_and_invoice_and_redirects_to_the_job_page(client, chain):
    skill = SkillFactory()
    response = client.post(skill.get_absolute_url(), {"prompt": "Summarise this paragraph."})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.public_id}/"
    assert job.prompt == "Summarise this paragraph."
    assert job.invoice.status == Invoice.Status.OPEN
    assert job.invoice.recipient == chain.recipient


def test_empty_prompt_shows_the_error_on_the_page(client):
    skill = SkillFactory()
    response = client.post(skill.get_absolute_url(), {"prompt": "   "})
    assert response.status_code == 400
    assert b"Write what you want the agent to do." in response.content
    assert not Job.objects.exists()


def test_too_long_prompt_shows_the_error_and_keeps_the_input(client):
    skill = SkillFactory()
    response = client.post(skill.get_absolute_url(), {"prompt": "x" * 20_001})
    assert response.status_code == 400
    assert b"at most 20000 characters" in response.content
    assert not Job.objects.exists()


def test_anonymous_buyer_sees_their_jobs_under_my_jobs(client):
    skill = SkillFactory(name="Launch post")
    client.post(skill.get_absolute_url(), {"prompt": "We shipped dark mode."})
    response = client.get(reverse("jobs:mine"))
    assert [job.skill for job in response.context["jobs"]] == [skill]
    other_browser = client.__class__()
    assert list(other_browser.get(reverse("jobs:mine")).context["jobs"]) == []


def test_job_page_shows_invoice_and_timeline(client, chain):
    skill = SkillFactory(price=Decimal("2.000000"))
    client.post(skill.get_absolute_url(), {"prompt": "Hello"})
    job = Job.objects.get()
    response = client.get(job.get_absolute_url())
    content = response.content.decode()
    assert response.status_code == 200
    assert chain.recipient in content
    assert f"2.{int(job.invoice.tail_units):06d}" in content  # the exact amount due, 6 places
    assert "31337" in content
    assert "Payment required" in content
    assert 'id="invoice-countdown"' in content


def test_job_page_query_count_is_constant(client, django_assert_max_num_queries):
    skill = SkillFactory()
    client.post(skill.get_absolute_url(), {"prompt": "Hello"})
    job = Job.objects.get()
    with django_assert_max_num_queries(8):
        client.get(job.get_absolute_url())


def test_unknown_job_is_404(client):
    assert client.get("/jobs/00000000-0000-0000-0000-000000000000/").status_code == 404


def cache_directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",")}


def test_job_page_is_never_stored_by_a_shared_or_back_forward_cache(client):
    skill = SkillFactory()
    client.post(skill.get_absolute_url(), {"prompt": "My private notes"})
    job = Job.objects.get()

    response = client.get(job.get_absolute_url())

    assert {"private", "no-store"} <= cache_directives(response)


def test_my_jobs_is_never_stored_by_a_shared_or_back_forward_cache(client):
    response = client.get(reverse("jobs:mine"))

    assert {"private", "no-store"} <= cache_directives(response)


def test_job_status_json_is_never_stored(client):
    skill = SkillFactory()
    client.post(skill.get_absolute_url(), {"prompt": "Hello"})
    job = Job.objects.get()

    response = client.get(reverse("jobs:status", args=[job.public_id]))

    assert {"private", "no-store"} <= cache_directives(response)


# ------------------------------------------------------------------------------
# Agents: one name each, the agent named on its page, never its provider's login
# ------------------------------------------------------------------------------


def test_an_agent_name_another_provider_took_is_refused_whatever_its_case(client):
    from django.core.exceptions import ValidationError

    AgentFactory(name="Quill")
    second = AgentFactory.build(name="quill", slug="quill-2", owner=ProviderFactory())

    with pytest.raises(ValidationError) as refused:
        second.full_clean()

    assert list(refused.value.message_dict) == ["name"]
    assert "already called" in refused.value.message_dict["name"][0]


def test_the_database_refuses_a_second_agent_of_the_same_name():
    from django.db import IntegrityError

    AgentFactory(name="Quill")

    with pytest.raises(IntegrityError):
        AgentFactory(name="QUILL")


def test_a_provider_adding_a_taken_agent_name_sees_it_on_the_name_field(client):
    from tests.conftest import log_in

    AgentFactory(name="Quill")
    provider = ProviderFactory()
    log_in(client, provider)

    response = client.post(
        reverse("admin:marketplace_agent_add"),
        {
            "name": "quill",
            "slug": "my-quill",
            "description": "",
            "payout_address": "0x" + "ab" * 20,
            "default_payment_mode": "upfront",
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["name"]


def test_the_agent_page_names_the_agent_not_its_providers_login(client):
    skill = SkillFactory(agent__name="Quill", agent__owner=ProviderFactory(username="ada"))

    page = client.get(skill.agent.get_absolute_url()).content.decode()

    assert "Quill" in page
    assert "ada" not in page
    assert "Run by" not in page


# ------------------------------------------------------------------------------
# One money format
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "shown"),
    [
        (Decimal("0.750000"), "0.75"),
        (Decimal("1.5"), "1.50"),
        (Decimal("2"), "2.00"),
        # A price below a cent keeps its digits: it is never rounded away.
        (Decimal("0.015000"), "0.015"),
    ],
)
def test_a_price_shows_with_two_decimals(price, shown):
    from marketplace.templatetags.money import usdc

    assert usdc(price) == shown


@pytest.mark.parametrize(
    ("units", "shown"), [(400042, "0.400042"), (750000, "0.750000"), (5, "0.000005")]
)
def test_an_exact_amount_shows_all_six_decimals(units, shown):
    from marketplace.templatetags.money import usdc

    assert usdc(units, 6) == shown


def test_the_catalog_and_the_skill_page_show_prices_with_two_decimals(client):
    skill = SkillFactory(price=Decimal("0.750000"))

    for url in ("/", skill.get_absolute_url()):
        page = client.get(url).content.decode()
        assert "0.75" in page, url
        assert "0.750000" not in page, url
