from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments.models import Invoice
from tests.factories import SkillFactory, order


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_all_get_distinct_invoice_amounts():
    skill = SkillFactory()

    def place(n):
        try:
            return order(skill, prompt=f"Order number {n}").invoice.amount_units
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        amounts = list(pool.map(place, range(20)))
    assert len(set(amounts)) == 20
    assert Invoice.objects.open().count() == 20


@pytest.mark.django_db
def test_database_refuses_two_held_invoices_with_one_amount():
    first = order().invoice
    second = order().invoice
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=second.pk).update(
            price_units=first.price_units,
            tail_units=first.tail_units,
            amount_units=first.amount_units,
        )


@pytest.mark.django_db
def test_tails_are_drawn_at_random_not_smallest_first():
    skill = SkillFactory()
    tails = {int(order(skill, prompt=f"Order {n}").invoice.tail_units) for n in range(12)}
    # The smallest-first draw handed out 1..100; a uniform draw over 9,999 lands higher.
    assert max(tails) > 100


@pytest.mark.django_db
def test_invoice_expiry_comes_from_invoice_ttl(settings):
    settings.INVOICE_TTL_MINUTES = 7
    invoice = order().invoice
    expected = timezone.now() + timedelta(minutes=7)
    assert abs((invoice.expires_at - expected).total_seconds()) < 60


def hold_every_tail(skill, *, status, closed_minutes_ago: int = 0) -> list[Invoice]:
    """Fill every normal tail of the skill's price with held invoices (abandoned orders)."""
    from payments.services.invoices import TAIL_MAX

    template = order(skill).invoice
    price = int(template.price_units)
    taken = {
        int(tail)
        for tail in Invoice.objects.holding()
        .filter(price_units=price)
        .values_list("tail_units", flat=True)
    }
    closed = timezone.now() - timedelta(minutes=closed_minutes_ago)
    rows = [
        Invoice(
            reference=f"abandoned-{tail}",
            status=status,
            chain_id=template.chain_id,
            token_address=template.token_address,
            token_decimals=template.token_decimals,
            recipient=template.recipient,
            price_units=price,
            tail_units=tail,
            amount_units=price + tail,
            expires_at=closed,
            closed_at=closed if status != Invoice.Status.OPEN else None,
        )
        for tail in range(1, TAIL_MAX + 1)
        if tail not in taken
    ]
    return Invoice.objects.bulk_create(rows, batch_size=2000)


@pytest.mark.django_db
def test_abandoned_open_orders_never_make_a_price_unbuyable():
    skill = SkillFactory()
    hold_every_tail(skill, status=Invoice.Status.OPEN)

    invoice = order(skill, prompt="A real buyer").invoice

    assert invoice.tail_units > 9999  # widened, not refused
    assert invoice.amount_units - invoice.price_units < 100_000


@pytest.mark.django_db
def test_silent_expired_invoices_give_their_tails_back_under_pressure(settings):
    settings.INVOICE_SILENT_GRACE_MINUTES = 15
    skill = SkillFactory()
    hold_every_tail(skill, status=Invoice.Status.EXPIRED, closed_minutes_ago=20)

    invoice = order(skill, prompt="A real buyer").invoice

    assert invoice.tail_units <= 9999  # a reclaimed tail of the normal band
    assert Invoice.objects.filter(holds_amount=False, status="expired").count() >= 9997


@pytest.mark.django_db
def test_an_expired_invoice_with_money_on_the_way_keeps_its_tail_under_pressure(chain):
    from tests.conftest import submit

    skill = SkillFactory()
    waited = order(skill)
    submit(waited, "0x" + "ef" * 32)  # a hash the buyer sent: money may be on its way
    Invoice.objects.filter(pk=waited.invoice.pk).update(
        status=Invoice.Status.EXPIRED, closed_at=timezone.now() - timedelta(hours=1)
    )
    hold_every_tail(skill, status=Invoice.Status.EXPIRED, closed_minutes_ago=60)

    order(skill, prompt="A real buyer")

    assert Invoice.objects.get(pk=waited.invoice.pk).holds_amount
