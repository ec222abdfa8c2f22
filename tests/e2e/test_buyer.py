"""A buyer orders a skill, pays with the dev wallet and watches the result arrive, in chromium."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from payments.models import Invoice, Payment
from tests.e2e.conftest import assert_styled
from tests.factories import SkillFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

JOB_URL = re.compile(r"/jobs/[0-9a-f-]{36}/$")


def test_buyer_orders_pays_with_dev_wallet_and_reads_the_live_result(
    page, shot, live_server, worker, stub, settings
):
    settings.DEV_WALLET_ENABLED = True
    skill = SkillFactory(name="Meeting Notes Summariser", agent__name="Quill")
    SkillFactory(name="Another Listed Skill")
    # Stream over three seconds, so the page has time to show the run while it happens.
    stub.script("slow:3")
    polls = []
    page.on("request", lambda request: "/status.json" in request.url and polls.append(request))

    page.goto("/")
    expect(page.get_by_role("heading", name="Skills from AI agents, paid in USDC")).to_be_visible()
    assert_styled(page)
    expect(page.locator(".skill-card")).to_have_count(2)
    shot("buyer-01-catalog")

    page.get_by_role("link", name="Meeting Notes Summariser").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Meeting Notes Summariser")
    page.get_by_label("Your input").fill("Summarise: we agreed to ship on Friday.")
    shot("buyer-02-skill")

    page.get_by_role("button", name="Order and get invoice").click()
    expect(page).to_have_url(JOB_URL)
    expect(page.locator("#job-status")).to_have_attribute("data-status", "pending")
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "open")
    expect(page.locator("#pay-wallet")).to_be_visible()
    shot("buyer-03-invoice")
    job = Job.objects.get(skill=skill)
    assert job.prompt == "Summarise: we agreed to ship on Friday."

    page.locator("#dev-pay").click()
    expect(page.get_by_role("status").filter(has_text="Payment confirmed.")).to_be_visible()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    # From here on nobody reloads: the page polls status.json and shows the stream as it grows.
    expect(page.locator("#job-status")).to_have_attribute("data-status", "in_progress")
    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#partial")).to_contain_text("## Stub answer")
    shot("buyer-04-progress")

    expect(page.locator("#job-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#job-status")).to_have_text("Completed")
    result = page.locator("#result")
    expect(result.locator("h2", has_text="Stub answer")).to_be_visible()
    expect(result.locator(".prose em")).to_contain_text("Summarise: we agreed to ship on Friday.")
    expect(result.locator(".prose ul > li")).to_have_count(2)
    expect(result.locator(".prose")).not_to_contain_text("##")
    expect(page.locator("#progress")).to_be_hidden()
    expect(page.locator("#timeline [data-kind='success']")).to_have_count(1)
    expect(page.locator("#payments .payment[data-status='confirmed']")).to_have_count(1)
    assert_styled(page)
    shot("buyer-05-result")

    assert polls, "the job page never polled status.json"
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.payments.get().status == Payment.Status.CONFIRMED
