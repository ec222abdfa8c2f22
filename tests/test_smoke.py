import pytest

from tests.factories import order

pytestmark = pytest.mark.django_db


def test_order_creates_job_with_invoice(chain):
    job = order()
    assert job.invoice.amount_units > job.invoice.price_units
