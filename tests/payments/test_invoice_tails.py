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
def test_database_refuses_two_open_invoices_with_one_amount():
    first = order().invoice
    second = order().invoice
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=second.pk).update(
            price_units=first.price_units,
            tail_units=first.tail_units,
            amount_units=first.amount_units,
        )


@pytest.mark.django_db
def test_an_expired_invoice_frees_its_amount():
    first = order().invoice
    Invoice.objects.filter(pk=first.pk).update(status=Invoice.Status.EXPIRED)
    second = order().invoice
    Invoice.objects.filter(pk=second.pk).update(
        tail_units=first.tail_units, amount_units=first.amount_units
    )
    assert Invoice.objects.filter(amount_units=first.amount_units).count() == 2


@pytest.mark.django_db
def test_invoice_expiry_comes_from_invoice_ttl(settings):
    settings.INVOICE_TTL_MINUTES = 7
    invoice = order().invoice
    expected = timezone.now() + timedelta(minutes=7)
    assert abs((invoice.expires_at - expected).total_seconds()) < 60
