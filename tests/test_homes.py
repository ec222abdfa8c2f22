"""The console's homes: a provider's agents at a glance and the operator's overview, each in a
fixed number of queries whatever the data size; the operator's opens while the node is down."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse

from jobs.settlement import jobs_release_earnings
from marketplace.models import OperatorAlert
from marketplace.services import alert_raise
from payments.models import Account, Payment
from payments.services.ledger import total
from payments.services.reconciliation import ledger_watch
from payments.services.settlement import payouts_queue
from tests.conftest import complete, log_in, paid, send_transfers, submit
from tests.factories import (
    AgentFactory,
    DraftSkillFactory,
    OperatorFactory,
    ProviderFactory,
    SkillFactory,
    order,
)

pytestmark = pytest.mark.django_db


def home(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response


def failed_order(stub, skill):
    from jobs.generation import job_generate

    stub.script("status:400")
    job = paid(order(skill))
    job_generate(job_id=job.pk)
    return job


# ------------------------------------------------------------------------------
# A provider's home
# ------------------------------------------------------------------------------


def test_a_providers_home_shows_each_agents_skills_jobs_and_earnings(client, chain, stub):
    provider = ProviderFactory()
    quill = AgentFactory(owner=provider, name="Quill")
    live = SkillFactory(agent=quill, name="Live One")
    DraftSkillFactory(agent=quill, name="Draft One")
    done = complete(order(live), chain)
    failed_order(stub, live)
    order(live)  # pending: ordered today, not finished
    AgentFactory(name="Someone Else's")
    log_in(client, provider)

    response = home(client)

    (card,) = response.context["provider_home"].agents
    assert card.agent == quill
    assert [s.name for s in card.live] == ["Live One"]
    assert [s.name for s in card.drafts] == ["Draft One"]
    assert (card.jobs_today, card.jobs_week) == (3, 3)
    assert card.success_rate == 50
    assert len(card.failures) == 1 and len(card.recent) == 3
    assert card.earnings.held_units == int(done.invoice.share_units) > 0
    page = response.content.decode()
    assert "Someone Else" not in page
    assert f"{int(done.invoice.share_units) / 10**6:.6f}" in page
    assert 'data-stat="jobs-today"' in page


def test_a_providers_home_shows_paid_out_earnings_with_the_payouts_transaction(
    client, chain, settings, fresh_wallet
):
    settings.DISPUTE_WINDOW_SECONDS = 0
    settings.PAYOUT_MINIMUM = Decimal("0")
    provider = ProviderFactory()
    job = complete(order(SkillFactory(agent__owner=provider)), chain)
    jobs_release_earnings()
    payouts_queue()
    send_transfers()
    log_in(client, provider)

    response = home(client)

    (card,) = response.context["provider_home"].agents
    assert card.earnings.paid_out_units == int(job.invoice.share_units)
    assert card.earnings.held_units == card.earnings.payable_units == 0
    (payout,) = card.earnings.payouts
    assert payout.tx_hash and payout.tx_hash in response.content.decode()


def test_a_provider_without_agents_is_invited_to_add_one(client):
    log_in(client, ProviderFactory())

    page = home(client).content.decode()

    assert reverse("admin:marketplace_agent_add") in page


def test_a_providers_home_makes_a_fixed_number_of_queries(
    client, chain, django_assert_max_num_queries
):
    provider = ProviderFactory()
    log_in(client, provider)

    def grow(agents: int, jobs: int) -> None:
        for _ in range(agents):
            skill = SkillFactory(agent__owner=provider)
            DraftSkillFactory(agent=skill.agent)
            for _ in range(jobs):
                order(skill)
        with django_assert_max_num_queries(15):
            home(client)

    grow(1, 1)
    grow(3, 7)


# ------------------------------------------------------------------------------
# The operator's home
# ------------------------------------------------------------------------------


def test_the_operators_home_shows_the_money_and_what_needs_an_operator(
    client, chain, stub, fresh_wallet
):
    jobs = [complete(order(), chain) for _ in range(2)]
    order()  # an open invoice
    lookalike = order()
    submit(lookalike, chain.transfer(lookalike.invoice.amount_units, token=chain.lookalike))
    failed_order(stub, SkillFactory())
    alert_raise(kind=OperatorAlert.Kind.CHAIN, message="The node lags behind.")
    log_in(client, OperatorFactory())
    assert "Not checked against the chain yet" in home(client).content.decode()
    ledger_watch()  # as beat does

    response = home(client)

    money = response.context["money"]
    received = sum(
        int(p.amount_units) for p in Payment.objects.filter(status=Payment.Status.CONFIRMED)
    )
    assert money.today_units == money.week_units == received
    assert money.today_count == 3  # two completed jobs and the failed one's payment
    assert money.open_invoices == 2
    assert money.rejected_by_code == [("lookalike", 1)]
    assert money.refunds_in_flight == 1  # the failed job's payment, going back
    assert money.revenue_units == total(Account.REVENUE) > 0
    assert money.ledger.ok and money.wallet_units == total(Account.WALLET)
    assert money.gas.wei is not None and money.gas.wei > 0
    overview = response.context["jobs_overview"]
    assert overview.failed == 1 and overview.dead_letters == 1
    page = response.content.decode()
    assert "The node lags behind." in page
    assert "The books match the chain" in page
    assert f"{received / 10**6:.6f}" in page
    assert len(jobs) == 2


def test_the_operators_home_links_today_to_the_payment_list_filtered_to_today(client, chain):
    paid(order())
    log_in(client, OperatorFactory())

    link = home(client).context["links"]["payments_today"]
    listing = client.get(f"{reverse('admin:payments_payment_changelist')}?{link}")

    assert listing.status_code == 200
    assert listing.context["totals"].rows == 1


def test_the_operators_home_opens_while_the_chain_node_is_down(client, settings):
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    cache.clear()
    log_in(client, OperatorFactory())

    response = home(client)

    assert response.context["money"].gas.wei is None
    assert "The chain node did not answer" in response.content.decode()


def test_the_operators_home_makes_a_fixed_number_of_queries(
    client, chain, stub, django_assert_max_num_queries
):
    log_in(client, OperatorFactory())

    def grow(jobs: int) -> None:
        for _ in range(jobs):
            complete(order(), chain)
            failed_order(stub, SkillFactory())
            alert_raise(kind=OperatorAlert.Kind.OTHER, key=str(jobs), message="Look.")
        with django_assert_max_num_queries(15):
            home(client)

    grow(1)
    grow(4)
