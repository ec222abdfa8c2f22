"""Skills in the console: activated and deactivated in bulk; a skill with jobs is deactivated,
never deleted, and the console says so; prices in the one money format."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from marketplace.models import Skill
from tests.conftest import log_in
from tests.factories import OperatorFactory, SkillFactory, order

pytestmark = pytest.mark.django_db


def act(client, action: str, skills) -> object:
    return client.post(
        reverse("admin:marketplace_skill_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [skill.pk for skill in skills]},
        follow=True,
    )


def test_skills_are_deactivated_and_activated_in_bulk(client, provider):
    skills = [SkillFactory(agent__owner=provider) for _ in range(3)]

    act(client, "deactivate", skills[:2])
    assert [s.is_active for s in Skill.objects.order_by("pk")] == [False, False, True]

    response = act(client, "activate", skills)
    assert all(s.is_active for s in Skill.objects.all())
    assert "2 skill(s) activated." in response.content.decode()


def test_bulk_actions_never_reach_another_providers_skill(client, provider):
    mine, theirs = SkillFactory(agent__owner=provider), SkillFactory()

    act(client, "deactivate", [mine, theirs])

    theirs.refresh_from_db()
    assert theirs.is_active


def test_deleting_a_skill_with_jobs_says_to_deactivate_it(client, provider):
    skill = SkillFactory(agent__owner=provider)
    order(skill)

    response = client.get(reverse("admin:marketplace_skill_delete", args=[skill.pk]), follow=True)

    page = response.content.decode()
    assert "it has jobs: deactivate it instead" in page
    assert "permission" not in page.lower()
    assert Skill.objects.filter(pk=skill.pk).exists()


def test_deleting_skills_with_jobs_in_bulk_says_to_deactivate_them(client, provider):
    with_jobs, without = SkillFactory(agent__owner=provider), SkillFactory(agent__owner=provider)
    order(with_jobs)

    response = client.post(
        reverse("admin:marketplace_skill_changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [with_jobs.pk, without.pk],
            "post": "yes",
        },
        follow=True,
    )

    assert "it has jobs: deactivate it instead" in response.content.decode()
    assert Skill.objects.count() == 2


def test_a_skill_without_jobs_is_deleted(client, provider):
    skill = SkillFactory(agent__owner=provider)

    client.post(reverse("admin:marketplace_skill_delete", args=[skill.pk]), {"post": "yes"})

    assert not Skill.objects.filter(pk=skill.pk).exists()


def test_the_skill_list_shows_prices_with_two_decimals_and_the_status(client):
    log_in(client, OperatorFactory())
    SkillFactory(name="Fixed")  # 1.250000 stored
    SkillFactory(
        name="Metered",
        pricing=Skill.Pricing.PER_1K_TOKENS,
        price=None,
        price_per_1k="0.020000",
        min_price="0.750000",
    )

    page = client.get(reverse("admin:marketplace_skill_changelist")).content.decode()

    assert ">1.25<" in page
    assert "0.02 / 1k tokens, min 0.75" in page
    assert "0.750000" not in page and "1.250000" not in page
    assert 'data-status="live"' in page
