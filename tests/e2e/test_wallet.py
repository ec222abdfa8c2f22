""" "Pay with wallet" through an injected EIP-1193 wallet: job.js's own code path, end to end."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from payments.models import Invoice, Payment
from tests.conftest import BUYERS
from tests.e2e.conftest import InjectedWallet, assert_styled
from tests.factories import SkillFactory, order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

TRANSFER = "0xa9059cbb"  # transfer(address,uint256)


def transfer_calldata(to: str, units: int) -> str:
    return TRANSFER + to.lower().removeprefix("0x").rjust(64, "0") + f"{units:064x}"


def test_pay_with_wallet_sends_the_transfer_and_the_job_completes(page, shot, chain, worker, stub):
    stub.script("slow:2")
    job = order(SkillFactory(name="Release Notes Writer"), prompt="Notes for v2.1: faster search.")
    invoice = job.invoice
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page)

    page.goto(job.get_absolute_url())
    expect(page.locator("#job-status")).to_have_attribute("data-status", "pending")
    expect(page.locator("#pay-wallet")).to_be_enabled()
    assert_styled(page)
    shot("wallet-01-invoice")

    page.locator("#pay-wallet").click()
    # job.js submits the hash form itself; the server verifies the transfer and redirects back.
    expect(page.get_by_role("status").filter(has_text="Payment confirmed.")).to_be_visible()
    # The page reads the chain again after the switch, and pins the transfer to it.
    assert wallet.methods == [
        "eth_requestAccounts",
        "eth_chainId",
        "wallet_switchEthereumChain",
        "eth_chainId",
        "eth_sendTransaction",
    ]
    assert wallet.calls[2][1] == [{"chainId": hex(invoice.chain_id)}]
    [sent] = wallet.sent
    [request] = wallet.calls[4][1]
    assert request["from"].lower() == buyer.lower()
    assert request["to"].lower() == invoice.token_address.lower()
    assert request["data"] == transfer_calldata(invoice.recipient, invoice.amount_units)
    assert request["chainId"] == hex(invoice.chain_id)
    transaction = chain.w3.eth.get_transaction(sent)
    assert transaction["chainId"] == invoice.chain_id

    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    payment_row = page.locator("#payments .payment")
    expect(payment_row).to_have_count(1)
    expect(payment_row).to_have_attribute("data-status", "confirmed")
    expect(payment_row).to_contain_text(sent[:10])
    expect(payment_row.locator(".badge")).to_have_text("Confirmed")
    shot("wallet-02-paid")

    expect(page.locator("#job-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#result .prose h2")).to_have_text(re.compile("Stub answer"))
    expect(page.locator("#pay-wallet")).to_have_count(0)
    shot("wallet-03-completed")

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.invoice.status == Invoice.Status.PAID
    payment = job.invoice.payments.get()
    assert payment.status == Payment.Status.CONFIRMED
    assert payment.source == Payment.Source.SUBMITTED
    assert payment.tx_hash == sent.lower()
    assert payment.amount_units == invoice.amount_units
    assert payment.from_address.lower() == buyer.lower()
