"""The buyer's payment paths on the job page, and the status.json contract."""

import secrets

import pytest
from django.urls import reverse

from jobs.models import Job
from payments.models import Invoice, Payment, Submission
from payments.services.submissions import Reason
from tests.factories import order

pytestmark = pytest.mark.django_db


def submit_url(job) -> str:
    return reverse("jobs:submit", args=[job.public_id])


def test_submitted_hash_pays_and_redirects_to_the_job(client, chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units)
    response = client.post(submit_url(job), {"tx_hash": tx}, follow=True)
    assert response.redirect_chain == [(job.get_absolute_url(), 302)]
    assert b"Payment confirmed." in response.content
    assert Job.objects.get(pk=job.pk).status == Job.Status.PAID


def test_malformed_hash_shows_the_reason_on_the_page(client):
    job = order()
    response = client.post(submit_url(job), {"tx_hash": "0xnothex"})
    assert response.status_code == 400
    assert Reason.MALFORMED.encode() in response.content
    assert not Submission.objects.exists()


def test_empty_hash_shows_a_form_error(client):
    job = order()
    response = client.post(submit_url(job), {"tx_hash": ""})
    assert response.status_code == 400
    assert b"Paste the hash of your USDC transfer." in response.content


def test_rejected_hash_shows_its_reason(client, chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units, token=chain.lookalike)
    response = client.post(submit_url(job), {"tx_hash": tx}, follow=True)
    assert b"only looks like USDC" in response.content
    assert Invoice.objects.get(pk=job.invoice.pk).status == Invoice.Status.OPEN


def test_payments_url_refuses_get(client):
    assert client.get(submit_url(order())).status_code == 405


def test_dev_wallet_pays_the_invoice(client, settings):
    settings.DEV_WALLET_ENABLED = True
    job = order()
    client.post(reverse("jobs:dev-pay", args=[job.public_id]))
    job.refresh_from_db()
    assert job.status == Job.Status.PAID
    assert job.invoice.payments.get().status == Payment.Status.CONFIRMED


def test_dev_wallet_is_off_outside_debug_on_the_dev_chain(client, settings):
    settings.DEV_WALLET_ENABLED = False
    job = order()
    response = client.post(reverse("jobs:dev-pay", args=[job.public_id]))
    assert response.status_code == 404
    assert not Payment.objects.exists()


def test_status_json_keeps_its_contract(client, chain):
    job = order()
    invoice = job.invoice
    ghost = "0x" + secrets.token_hex(32)
    client.post(submit_url(job), {"tx_hash": ghost})  # not on chain yet: kept, pending
    lookalike = chain.transfer(invoice.amount_units, token=chain.lookalike)
    client.post(submit_url(job), {"tx_hash": lookalike})
    paid = chain.transfer(invoice.amount_units)
    client.post(submit_url(job), {"tx_hash": paid})

    data = client.get(reverse("jobs:status", args=[job.public_id])).json()
    assert data["job"]["id"] == str(job.public_id)
    assert data["job"]["status"] == "paid"
    amount = str(invoice.amount_units)
    assert {
        key: data["invoice"][key]
        for key in (
            "status", "amount_units", "paid_units", "due_units", "token_address", "chain_id",
            "recipient", "payment_uri", "payable",
        )
    } == {
        "status": "paid",
        "amount_units": amount,
        "paid_units": amount,
        "due_units": "0",
        "token_address": chain.token,
        "chain_id": 31337,
        "recipient": chain.recipient,
        "payment_uri": "",  # nothing is due: nothing to scan
        "payable": False,
    }  # fmt: skip
    assert data["invoice"]["expires_at"].endswith("Z")
    payments = {p["tx_hash"]: p for p in data["payments"]}
    # The paid invoice retired the hash that never appeared, saying why.
    assert payments[ghost]["status"] == "retired"
    assert payments[ghost]["log_index"] is None
    assert "paid by another transfer" in payments[ghost]["reason"]
    assert payments[lookalike]["status"] == "rejected"
    assert payments[lookalike]["log_index"] is None
    assert "only looks like USDC" in payments[lookalike]["reason"]
    assert payments[paid]["status"] == "confirmed"
    assert payments[paid]["amount_units"] == amount
    assert isinstance(payments[paid]["log_index"], int)
    assert data["refunds"] == []
    assert data["settlement"]["state"] == "unsettled"


def test_open_invoice_offers_only_the_amount_due(client, chain):
    job = order()
    data = client.get(reverse("jobs:status", args=[job.public_id])).json()["invoice"]
    assert data["payable"] is True
    assert data["payment_uri"].endswith(f"&uint256={job.invoice.amount_units}")
    assert data["due_units"] == str(job.invoice.amount_units)


def test_status_json_is_not_cached(client):
    response = client.get(reverse("jobs:status", args=[order().public_id]))
    assert "no-cache" in response["Cache-Control"]
