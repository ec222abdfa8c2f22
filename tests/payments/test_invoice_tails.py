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
