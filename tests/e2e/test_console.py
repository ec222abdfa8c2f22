"""The console in chromium: a provider creates a skill, sees it as a draft, test-runs it on the
real worker, publishes it, finds it in the catalog and watches a buyer's job move its home; an
operator reads today's money and finds the console refusing what would break."""

import re

import pytest
from playwright.sync_api import Page, expect

from jobs.models import Job
from marketplace.models import Skill
from payments.models import ChainCursor, Payment
from payments.services.reconciliation import ledger_watch
from tests.conftest import paid, submit, wait_for
from tests.factories import AgentFactory, OperatorFactory, ProviderFactory, SkillFactory, order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SKILL_NAME = "Meeting Notes Summariser"


def sign_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text(username)


def usdc(units: int) -> str:
    return f"{units // 10**6}.{units % 10**6:06d}"


def stat(card, name: str):
    return card.locator(f"[data-stat='{name}'] dd").first


def test_a_provider_creates_tests_and_publishes_a_skill_then_sees_a_buyers_job_on_its_home(
    page, shot, live_server, worker, stub
):
    provider = ProviderFactory(username="ada")
    AgentFactory(owner=provider, name="Quill", slug="quill")
    sign_in(page, "ada")

    card = page.locator(".agent-home[data-agent='quill']")
    expect(stat(card, "jobs-today")).to_have_text("0")
    expect(stat(card, "held")).to_contain_text("0.000000")

    # A new skill: the form shows the fields of the chosen pricing mode only.
    page.get_by_role("link", name="Add a skill").click()
    expect(page.locator("#skill-draft-note")).to_be_visible()
    page.locator("#id_agent").select_option(label="Quill")
    page.locator("#id_name").fill(SKILL_NAME)
    page.locator("#id_name").press("End")  # a key, as typing would: the admin's prepopulate
    # The slug and the API name follow the name as it is typed.
    expect(page.locator("#id_slug")).to_have_value("meeting-notes-summariser")
    expect(page.locator("#id_service_key")).to_have_value("meeting-notes-summariser")
    page.locator("#id_description").fill("Turns raw meeting notes into decisions and actions.")
    page.locator("#id_system_prompt").fill("Summarise the notes: decisions, then actions.")
    page.locator("#id_model").select_option("claude-haiku-4-5")
    expect(page.locator(".form-row.field-price")).to_be_visible()
    expect(page.locator(".form-row.field-price_per_1k")).to_be_hidden()
    page.locator("#id_pricing").select_option("per_1k_tokens")
    expect(page.locator(".form-row.field-price")).to_be_hidden()
    expect(page.locator(".form-row.field-min_price")).to_be_visible()
    page.locator("#id_pricing").select_option("fixed")
    page.locator("#id_price").fill("0.50")
    shot("console-01-add-skill")
    page.get_by_role("button", name="Save and continue editing").click()

    # A draft: out of the catalog until a test run passes and it is published.
    expect(page.locator("#skill-status")).to_have_text("Draft")
    expect(page.locator("#skill-needs-test")).to_be_visible()
    expect(page.locator("#publish-skill")).to_have_count(0)
    skill = Skill.objects.get(slug="meeting-notes-summariser")
    assert skill.status == Skill.Status.DRAFT
    shot("console-02-draft")
    skill_url = page.url
    page.goto("/")
    expect(page.get_by_role("link", name=SKILL_NAME)).to_have_count(0)

    # The test run: the real worker serves it; its page refreshes until it ends.
    page.goto(skill_url)
    page.locator("#test-run-input").fill("Notes: we ship Friday; Ada writes the release notes.")
    page.locator("#start-test-run").click()
    expect(page.locator("#job-page")).to_have_attribute("data-status", "completed")
    expect(page.locator("#job-output h2")).to_have_text("Stub answer")
    expect(page.locator(".field-money")).to_contain_text("Unbilled")
    test_run = Job.objects.get(skill=skill)
    assert test_run.is_test and test_run.invoice is None
    shot("console-03-test-run")

    # Publish, then the catalog lists it.
    page.locator("#publish-skill").click()
    expect(page.locator("#skill-status")).to_have_text("Live")
    page.goto("/")
    expect(page.get_by_role("link", name=SKILL_NAME)).to_be_visible()

    # A buyer orders and pays; the worker runs it; the home's numbers move.
    job = paid(order(Skill.objects.get(pk=skill.pk)))
    wait_for(
        lambda: Job.objects.get(pk=job.pk).invoice.settled_at is not None,
        what="the buyer's job to complete and settle",
    )
    job.refresh_from_db()
    job.invoice.refresh_from_db()
    share = usdc(int(job.invoice.share_units))
    page.goto("/admin/")
    expect(stat(card, "jobs-today")).to_have_text("1")
    expect(stat(card, "success-rate")).to_have_text("100%")
    expect(stat(card, "held")).to_contain_text(share)
    recent = card.locator("[data-list='recent-jobs']")
    expect(recent).to_contain_text(str(job.public_id)[:8])
    expect(recent).not_to_contain_text(str(test_run.public_id)[:8])
    shot("console-04-provider-home")

    recent.get_by_role("link", name=str(job.public_id)[:8]).click()
    expect(page.locator(".field-money")).to_contain_text("Buyer paid")
    expect(page.locator(".field-money")).to_contain_text(f"{share} USDC, held")
    expect(page.locator("#job-output h2")).to_have_text("Stub answer")
    expect(page.locator("#job-retry")).to_have_count(0)
    shot("console-05-provider-job")


def test_an_operator_reads_todays_money_and_the_console_refuses_what_would_break(
    page, shot, live_server, worker, stub, chain, fresh_wallet
):
    OperatorFactory(username="olga")
    AgentFactory(name="Quill", slug="quill")
    jobs = [paid(order()) for _ in range(2)]
    # A hash of a look-alike token's transfer: rejected, and left with its invoice open.
    lookalike = order()
    submit(lookalike, chain.transfer(lookalike.invoice.amount_units, token=chain.lookalike))
    payments = Payment.objects.filter(status=Payment.Status.CONFIRMED)
    total = usdc(sum(int(payment.amount_units) for payment in payments))
    assert payments.count() == len(jobs)
    ChainCursor.objects.create(chain_id=31337, token_address="0x" + "1" * 40, next_block=7)
    ledger_watch()  # beat's check of the books against the chain
    sign_in(page, "olga")

    # The home: today's money, read from the confirmed transfers.
    money = page.locator("#operator-money")
    expect(stat(money, "money-today")).to_contain_text(total)
    expect(stat(money, "open-invoices")).to_have_text("1")
    expect(page.locator("[data-list='rejected-by-code'] [data-code='lookalike']")).to_contain_text(
        "1"
    )
    expect(page.locator("#ledger-check")).to_contain_text("The books match the chain")
    shot("console-06-operator-home")

    # The payment list, filtered to today: its total is the payments this test made.
    page.locator("#payments-payment").get_by_role("link", name="Payments").click()
    page.locator("#changelist-filter").get_by_role("link", name="Today").first.click()
    expect(page).to_have_url(re.compile(r"block_time__gte="))
    expect(page.locator("#list-total")).to_have_text(f"{total} USDC")
    expect(page.locator("#list-totals")).to_contain_text("2 transfers")
    shot("console-07-payments-today")

    # A schema that is not an object, or accepts nothing, is refused on its field.
    page.goto("/admin/marketplace/skill/add/")
    page.locator(".field-agent .select2-selection").click()
    page.locator(".select2-search__field").fill("Qui")
    page.locator(".select2-results__option", has_text="Quill").click()
    page.locator("#id_name").fill("Broken Schema")
    page.locator("#id_name").press("End")
    page.locator("#id_description").fill("Never saved.")
    page.locator("#id_system_prompt").fill("Reply in JSON.")
    page.locator("#id_output_format").select_option("json")
    page.locator("#id_price").fill("1")
    for schema, message in (("42", "is a JSON object"), ("false", "accepts no answer")):
        page.locator("#id_json_schema").fill(schema)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".errornote")).to_be_visible()
        expect(page.locator(".form-row.field-json_schema .errorlist")).to_contain_text(message)
    shot("console-08-schema-refused")
    assert not Skill.objects.filter(slug="broken-schema").exists()

    # System tables are read-only: no Add, no Save.
    page.goto("/admin/payments/chaincursor/")
    expect(page.locator("#result_list")).to_contain_text("31337")
    expect(page.locator(".object-tools .addlink")).to_have_count(0)
    page.locator("#result_list a").first.click()
    expect(page.locator("input[name='_save']")).to_have_count(0)


def test_long_names_wrap_and_the_lists_fit_at_1280_pixels(page, shot, live_server):
    unbroken = "Summariser" * 9 + "Summari"  # 97 characters, no space
    skill = SkillFactory(name=unbroken, agent__name="Agent" + "X" * 90)
    OperatorFactory(username="olga")

    page.goto("/")
    card = page.locator(".skill-card").first
    title = card.locator(".skill-card-title")
    assert title.evaluate("node => node.scrollWidth <= node.clientWidth")
    assert card.evaluate("node => node.scrollWidth <= node.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot("layout-01-long-name")

    page.goto(skill.get_absolute_url())
    page.get_by_label("Your input").fill("Summarise: a long name must wrap.")
    page.get_by_role("button", name="Order and get invoice").click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
    page.goto("/jobs/")
    expect(page.locator(".job-row")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.locator(".job-row").evaluate("node => node.scrollWidth <= node.clientWidth")
    shot("layout-02-my-jobs")

    sign_in(page, "olga")
    page.goto("/admin/jobs/job/")
    expect(page.locator("#result_list")).to_be_visible()
    # No red cross on a healthy job (a "refund due" column once showed one on every row).
    expect(page.locator("#result_list img[src*='icon-no']")).to_have_count(0)
    shot("layout-03-admin-jobs")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.locator("#changelist .results").evaluate(
        "node => node.scrollWidth <= node.clientWidth"
    )
