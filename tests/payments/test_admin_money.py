"""Money in the console: invoices and payments by date with the total of the rows a filter
selects; providers told where their money shows instead of a bare 403; system tables read-only."""

from datetime import timedelta

import pytest
from django.urls import reverse

from jobs.services import start_of_day
from payments.models import ChainCursor, Payment
from tests.conftest import log_in, paid, submit
from tests.factories import ProviderFactory, SkillFactory, order

pytestmark = pytest.mark.django_db


def usdc(units: int) -> str:
    return f"{units / 10**6:.6f}"


def totals(response):
    assert response.status_code == 200
    return response.context["totals"]


def test_the_payment_list_totals_every_row_its_filters_select(client, operator, chain):
    jobs = [paid(order()) for _ in range(3)]
    amounts = [int(job.invoice.payments.get().amount_units) for job in jobs]

    response = client.get(
        reverse("admin:payments_payment_changelist"), {"status__exact": "confirmed"}
    )

    found = totals(response)
    assert (found.rows, found.amount_units, found.confirmed_units) == (
        3,
        sum(amounts),
        sum(amounts),
    )
    assert f"{usdc(sum(amounts))} USDC" in response.content.decode()


def test_the_payment_total_counts_every_page_not_only_the_first(client, operator, chain, settings):
    from payments.admin import PaymentAdmin

    jobs = [paid(order()) for _ in range(3)]
    PaymentAdmin.list_per_page, kept = 1, PaymentAdmin.list_per_page
    try:
        found = totals(client.get(reverse("admin:payments_payment_changelist")))
    finally:
        PaymentAdmin.list_per_page = kept

    assert found.rows == 3
    assert found.amount_units == sum(int(job.invoice.paid_units) for job in jobs)


def test_paid_today_selects_the_transfers_mined_today(client, operator, chain):
    today = paid(order()).invoice.payments.get()
    yesterday = paid(order()).invoice.payments.get()
    Payment.objects.filter(pk=yesterday.pk).update(block_time=today.block_time - timedelta(days=1))
    start = start_of_day()

    response = client.get(
        reverse("admin:payments_payment_changelist"),
        {"block_time__gte": str(start), "block_time__lt": str(start + timedelta(days=1))},
    )

    found = totals(response)
    assert (found.rows, found.amount_units) == (1, int(today.amount_units))
    assert "paid at" in response.content.decode()


def test_a_rejected_or_pending_transfer_is_in_the_total_but_not_in_confirmed(
    client, operator, chain
):
    job = paid(order())
    Payment.objects.filter(invoice=job.invoice).update(status=Payment.Status.REVERTED)

    found = totals(client.get(reverse("admin:payments_payment_changelist")))

    assert found.amount_units == int(job.invoice.paid_units)
    assert found.confirmed_units == 0


def test_the_invoice_list_totals_what_was_asked_and_what_was_paid(client, operator, chain):
    paid_job, open_job = paid(order()), order()

    response = client.get(reverse("admin:payments_invoice_changelist"))

    found = totals(response)
    assert found.rows == 2
    assert found.amount_units == int(paid_job.invoice.amount_units) + int(
        open_job.invoice.amount_units
    )
    assert found.confirmed_units == int(paid_job.invoice.paid_units)


def test_invoices_filter_by_the_day_they_were_paid(client, operator, chain):
    paid(order())
    order()
    start = start_of_day()

    response = client.get(
        reverse("admin:payments_invoice_changelist"),
        {"paid_at__gte": str(start), "paid_at__lt": str(start + timedelta(days=1))},
    )

    assert totals(response).rows == 1


def test_the_lists_have_a_date_hierarchy(client, operator, chain):
    paid(order())

    for name in ("payments_payment", "payments_invoice"):
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.context["cl"].date_hierarchy, name
        assert 'class="toplinks"' in response.content.decode(), name


# ------------------------------------------------------------------------------
# Providers
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "admin:payments_invoice_changelist",
        "admin:payments_payment_changelist",
        "admin:payments_onchaintransfer_changelist",
        "admin:payments_ledgertransaction_changelist",
        "admin:payments_ledgercheck_changelist",
    ],
)
def test_a_provider_opening_the_money_lists_is_told_where_its_money_shows(client, url):
    provider = ProviderFactory()
    log_in(client, provider)

    response = client.get(reverse(url))

    assert response.status_code == 403
    page = response.content.decode()
    assert "for operators" in page
    assert "your home" in page and "job" in page
    assert 'id="user-tools"' in page  # the console around it, not a bare error page


def test_a_provider_opening_its_own_invoice_is_told_the_same(client, chain):
    provider = ProviderFactory()
    job = paid(order(SkillFactory(agent__owner=provider)))
    log_in(client, provider)

    invoice = client.get(reverse("admin:payments_invoice_change", args=[job.invoice.pk]))
    payment_page = client.get(
        reverse("admin:payments_payment_change", args=[job.invoice.payments.get().pk])
    )

    for response in (invoice, payment_page):
        assert response.status_code == 403
        page = response.content.decode()
        assert "for operators" in page
        assert job.invoice.payments.get().from_address not in page


def test_a_rejected_hash_shows_its_code_on_the_invoice(client, operator, chain):
    job = order()
    submit(job, chain.transfer(job.invoice.amount_units, token=chain.lookalike))

    page = client.get(reverse("admin:payments_invoice_change", args=[job.invoice.pk]))

    assert "lookalike" in page.content.decode()


# ------------------------------------------------------------------------------
# System tables
# ------------------------------------------------------------------------------


def test_chain_cursors_offer_no_add_and_cannot_be_saved(client, operator):
    cursor = ChainCursor.objects.create(chain_id=31337, token_address="0x" + "1" * 40, next_block=7)

    listing = client.get(reverse("admin:payments_chaincursor_changelist"))
    add = client.get(reverse("admin:payments_chaincursor_add"))
    change = client.get(reverse("admin:payments_chaincursor_change", args=[cursor.pk]))
    post = client.post(
        reverse("admin:payments_chaincursor_change", args=[cursor.pk]), {"next_block": 1}
    )

    assert listing.status_code == 200
    assert reverse("admin:payments_chaincursor_add") not in listing.content.decode()
    assert add.status_code == 403
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert post.status_code == 403
    cursor.refresh_from_db()
    assert cursor.next_block == 7
