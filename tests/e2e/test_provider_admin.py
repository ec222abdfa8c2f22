"""A provider logs into the admin through the real login form and edits one of its skills."""

import re

import pytest
from playwright.sync_api import expect

from marketplace.models import Skill
from tests.factories import ProviderFactory, SkillFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_provider_logs_in_and_renames_its_own_skill(page, shot):
    provider = ProviderFactory(username="ada")
    skill = SkillFactory(name="Blog Post Drafter", agent__owner=provider, agent__name="Quill")
    SkillFactory(name="Someone Else's Skill")  # another provider's: never listed for ada

    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw")
    shot("provider-01-login")
    page.get_by_role("button", name="Log in").click()

    expect(page.locator("#user-tools")).to_contain_text("ada")
    shot("provider-02-dashboard")
    page.locator("#content-main").get_by_role("link", name="Skills", exact=True).click()

    results = page.locator("#result_list")
    expect(results).to_contain_text("Blog Post Drafter")
    expect(results).not_to_contain_text("Someone Else's Skill")
    shot("provider-03-skills")
    results.get_by_role("link", name="Blog Post Drafter").click()

    name = page.locator("#id_name")
    expect(name).to_have_value("Blog Post Drafter")
    name.fill("Long-form Blog Post Drafter")
    shot("provider-04-change-form")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist .success")).to_contain_text(
        "The skill “Quill / Long-form Blog Post Drafter” was changed successfully."
    )
    expect(results.get_by_role("link", name="Long-form Blog Post Drafter")).to_be_visible()
    expect(results).not_to_contain_text("Someone Else's Skill")
    shot("provider-05-saved")

    skill.refresh_from_db()
    assert skill.name == "Long-form Blog Post Drafter"
    assert Skill.objects.filter(name="Someone Else's Skill").exists()
