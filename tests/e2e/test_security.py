"""Every kind of page works in chromium under the Content-Security-Policy, the admin's included.

The page fixture fails a test on any console error, and chromium logs each CSP violation as
one, so these journeys pass only if nothing the pages need is blocked.
"""

import re
import secrets

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from playwright.sync_api import expect

from tests.e2e.conftest import assert_styled
from tests.factories import OperatorFactory, SkillFactory, order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

JOB_URL = re.compile(r"/jobs/[0-9a-f-]{36}/$")


def assert_policy(response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp


def click_and_expect_refusal(page, button: str, heading: str, says: str) -> None:
    """Click the form's button: the page it lands on answers 429 under the policy, and is
    Vendo's own, styled, with its heading and what to do next."""
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button).click()
    response = navigation.value
    assert response.status == 429
    assert_policy(response)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.locator("#rate-limited")).to_contain_text(says)
    assert_styled(page)


def test_a_csp_violation_fails_the_page_check(page):
    """Guard the journeys below: a blocked inline style is reported, so they cannot pass blind."""
    page.goto("/")
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")

    violations = [problem for problem in page.problems if "Content Security Policy" in problem]
    assert violations, page.problems
    page.problems.clear()


def test_buyer_pages_work_under_the_policy(page, live_server, settings, shot):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "orders": "1/h"}
    skill = SkillFactory(name="Meeting Notes Summariser", agent__name="Quill")

    response = page.goto("/")
    assert_policy(response)
    assert_styled(page)

    response = page.goto(skill.agent.get_absolute_url())
    assert_policy(response)
    expect(page.get_by_role("heading", level=1)).to_have_text("Quill")

    response = page.goto(skill.get_absolute_url())
    assert_policy(response)
    page.get_by_label("Your input").fill("Summarise: we ship on Friday.")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Order and get invoice").click()
    expect(page).to_have_url(JOB_URL)
    job_url = page.url
    # The order redirected to the job page: the policy is on the page it landed on.
    assert_policy(navigation.value)
    expect(page.locator(".qr svg")).to_be_visible()
    # job.js runs: it reveals the copy buttons and counts the invoice down.
    expect(page.locator("[data-copy]").first).to_be_visible()
    expect(page.locator("#invoice-countdown")).to_have_text(re.compile(r"\d"))

    # A hash the chain does not know yet: the page says so in a message, which site.js dismisses.
    page.get_by_label("Transaction hash").fill("0x" + secrets.token_hex(32))
    page.get_by_role("button", name="Check").click()
    alert = page.locator(".messages .alert").first
    expect(alert).to_be_visible()
    alert.get_by_role("button", name="Dismiss").click()
    expect(page.locator(".messages .alert")).to_have_count(0)
    shot("security-01-job")

    response = page.goto(reverse("jobs:mine"))
    assert_policy(response)
    expect(page.locator(".job-row")).to_have_count(1)

    missing = "/agents/nobody/nothing/"
    page.problems.expect_status(404, missing)
    response = page.goto(missing)
    assert response.status == 404
    assert_policy(response)
    expect(page.get_by_role("heading", level=1)).to_have_text("This page doesn’t exist")
    assert_styled(page)

    # The limit is one order an hour: the second gets the 429 page, styled, with its policy.
    page.goto(skill.get_absolute_url())
    page.get_by_label("Your input").fill("And again.")
    page.problems.expect_status(429, skill.get_absolute_url())
    click_and_expect_refusal(page, "Order and get invoice", "Too many requests", "Try again in")
    shot("security-02-rate-limited")
    assert page.url.endswith(skill.get_absolute_url())
    assert job_url


def test_admin_works_under_the_policy(page, shot):
    OperatorFactory(username="root")
    skill = SkillFactory(name="Blog Post Drafter", agent__name="Quill")

    response = page.goto("/admin/login/")
    assert_policy(response)
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text("root")

    # The change list: filters, actions, search.
    response = page.goto(reverse("admin:marketplace_skill_changelist"))
    assert_policy(response)
    expect(page.locator("#result_list")).to_contain_text("Blog Post Drafter")
    page.locator("#action-toggle").check()
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")

    # The add form: prepopulated slugs, the agent autocomplete (select2), the pricing script.
    response = page.goto(reverse("admin:marketplace_skill_add"))
    assert_policy(response)
    page.locator("#id_name").press_sequentially("Release Notes Writer")
    expect(page.locator("#id_slug")).to_have_value("release-notes-writer")
    expect(page.locator("#id_service_key")).to_have_value("release-notes-writer")
    page.locator(".field-agent .select2-selection").click()
    page.locator(".select2-search__field").fill("Quill")
    page.locator(".select2-results__option", has_text="Quill").click()
    expect(page.locator(".field-agent .select2-selection__rendered")).to_contain_text("Quill")
    page.locator("#id_pricing").select_option("per_1k_tokens")
    expect(page.locator(".form-row.field-price")).to_be_hidden()
    shot("security-03-admin-add-skill")

    # The change form of an existing skill with its collapsed History, and a job with its
    # inline timeline and collapsed internals.
    response = page.goto(reverse("admin:marketplace_skill_change", args=[skill.pk]))
    assert_policy(response)
    expect(page.locator("#id_name")).to_have_value("Blog Post Drafter")
    history = page.locator("details", has=page.locator("summary", has_text="History"))
    expect(history).not_to_have_attribute("open", "")
    history.locator("summary").click()
    expect(history).to_have_attribute("open", "")
    job = order(skill=skill)
    response = page.goto(reverse("admin:jobs_job_change", args=[job.pk]))
    assert_policy(response)
    expect(page.locator("#events-group")).to_contain_text("Payment required")

    # The agent form's owner autocomplete.
    page.goto(reverse("admin:marketplace_agent_add"))
    page.locator(".field-owner .select2-selection").click()
    page.locator(".select2-search__field").fill("root")
    page.locator(".select2-results__option", has_text="root").click()
    expect(page.locator(".field-owner .select2-selection__rendered")).to_contain_text("root")


def test_locked_out_sign_in_shows_the_lockout_page(page, settings, shot):
    settings.AXES_FAILURE_LIMIT = 2
    OperatorFactory(username="root")
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("guess-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errornote")).to_be_visible()

    page.problems.expect_status(429, "/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("guess-2")
    click_and_expect_refusal(page, "Log in", "Sign-in locked", "ask an operator to unlock it")
    shot("security-04-locked-out")


def test_every_admin_page_loads_without_a_csp_error(page):
    """Each registered model's change list, add form and change form, as an operator."""
    operator = OperatorFactory(username="root")
    order(skill=SkillFactory())
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("nobody")  # a failed attempt, to list and open
    page.get_by_label("Password").fill("guess")
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text("root")

    operator_request = RequestFactory().get("/admin/")
    operator_request.user = operator
    visited = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls = [reverse("admin:{}_{}_changelist".format(*info))]
        if model_admin.has_add_permission(operator_request):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
        for url in urls:
            response = page.goto(url)
            assert response.status == 200, url
            assert_policy(response)
            expect(page.locator("#content")).to_be_visible()
            visited.append(url)

    assert any(re.search(r"/axes/accessattempt/\d+/change/", url) for url in visited)
    assert len(visited) > 20
