""" "Pay with wallet" through an injected EIP-1193 wallet: job.js's own code path, end to end.

The wallet is pinned to the invoice's chain, amounts are exact whatever the token's decimals,
and a transfer only its sender can claim is claimed by signing in the page.
"""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from marketplace.money import format_token
from payments import devchain
from payments.models import Invoice, Payment
from tests.conftest import BUYERS, DEPLOYER
from tests.e2e.conftest import InjectedWallet, assert_styled, recheck_now
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


# ------------------------------------------------------------------------------
# The wallet is pinned to the invoice's chain
# ------------------------------------------------------------------------------


def test_wallet_that_answers_the_switch_without_switching_sends_nothing(page, shot, chain):
    job = order(SkillFactory(name="Release Notes Writer"))
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key, switches=False).install(page)

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    expect(page.locator("#wallet-status")).to_contain_text(
        f"Your wallet is on chain 1, not on chain {job.invoice.chain_id} of this invoice"
    )
    expect(page.locator("#wallet-status")).to_contain_text("nothing was sent")
    shot("wallet-04-wrong-chain")
    # The page asked where the wallet is after the switch, and stopped there.
    assert wallet.methods == [
        "eth_requestAccounts",
        "eth_chainId",
        "wallet_switchEthereumChain",
        "eth_chainId",
    ]
    assert wallet.sent == []
    expect(page.locator("#pay-wallet")).to_be_enabled()
    job.invoice.refresh_from_db()
    assert job.invoice.status == Invoice.Status.OPEN


def test_network_change_mid_flow_stops_the_payment_until_the_buyer_tries_again(page, shot, chain):
    job = order(SkillFactory(name="Release Notes Writer"))
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key, chain_id=devchain.CHAIN_ID).install(page)
    # The buyer moves the wallet to mainnet while the page is connecting to it.
    wallet.switch_after("eth_requestAccounts", 1)

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    status = page.locator("#wallet-status")
    expect(status).to_contain_text("Your wallet switched to chain 1, so the payment stopped")
    expect(status).to_contain_text("nothing was sent")
    expect(page.locator("#pay-wallet")).to_be_enabled()
    shot("wallet-05-chain-changed")
    assert "eth_sendTransaction" not in wallet.methods
    assert wallet.sent == []

    # A second try switches the wallet back to the invoice's chain and pays.
    page.locator("#pay-wallet").click()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    [sent] = wallet.sent
    assert chain.w3.eth.get_transaction(sent)["chainId"] == job.invoice.chain_id
    assert wallet.methods.count("eth_sendTransaction") == 1


# ------------------------------------------------------------------------------
# Amounts are strings: an 18-decimal token, above 2^53 base units
# ------------------------------------------------------------------------------


def test_amounts_in_the_page_never_go_through_floats(page, chain):
    job = order(SkillFactory())
    page.goto(job.get_absolute_url())
    above = 2**53 + 1
    assert page.evaluate(f"Vendo.formatUnits('{above}', 18)") == format_token(above, 18)
    assert page.evaluate("Vendo.formatUnits('1000000000000000000000', 18)") == (
        "1000.000000000000000000"
    )
    assert page.evaluate("Vendo.formatUnits('5000037', 6)") == "5.000037"
    assert page.evaluate("Vendo.formatUnits('5000000', 6)") == "5.000000"
    recipient = job.invoice.recipient
    for units in (above, 10**21 + 7, 2**256 - 1):
        data = page.evaluate(f"Vendo.transferData('{recipient}', '{units}')")
        assert data == transfer_calldata(recipient, units)


@pytest.fixture
def token18(chain, settings):
    """An 18-decimal token, funded for the buyers, as the payment token of this test."""
    address = devchain.deploy(chain.w3, "Test18", sender=DEPLOYER)
    for buyer, _ in BUYERS:
        devchain.mint(chain.w3, address, buyer, 10**24, DEPLOYER)
    settings.PAYMENT_TOKEN_ADDRESS = address
    return address


def test_amount_above_2_53_base_units_is_sent_exactly(page, shot, chain, token18, settings):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order(SkillFactory(name="Release Notes Writer"))
    invoice = job.invoice
    assert invoice.token_address == token18
    assert invoice.token_decimals == 18
    amount = int(invoice.amount_units)
    assert amount > 2**53
    exact = f"{format_token(amount, 18)} USDC"  # all 18 places, so a manual payer can match
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page)

    page.goto(job.get_absolute_url())
    expect(page.locator("#invoice-due")).to_have_text(exact)
    page.locator("#pay-wallet").click()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "processing")
    [request] = [params[0] for method, params in wallet.calls if method == "eth_sendTransaction"]
    assert request["to"].lower() == token18.lower()
    assert request["data"] == transfer_calldata(invoice.recipient, amount)
    assert int(request["data"][-64:], 16) == amount

    # A confirmation more: the page redraws the payment from status.json's string, exactly.
    chain.mine()
    recheck_now()
    row = page.locator("#payments .payment")
    expect(row.locator(".payment-meta")).to_contain_text("2 confirmations")
    expect(row.locator(".payment-meta")).to_contain_text(exact)
    expect(page.locator("#invoice-pending")).to_have_text(exact)
    shot("wallet-06-eighteen-decimals")

    chain.mine()
    recheck_now()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    payment = invoice.payments.get()
    assert int(payment.amount_units) == amount
    assert int(invoice.paid_units) == amount


# ------------------------------------------------------------------------------
# A rounded transfer, claimed by signing with the wallet that sent it
# ------------------------------------------------------------------------------


def test_rounded_transfer_is_claimed_by_signing_in_the_page_then_the_rest_paid(page, shot, chain):
    job = order(SkillFactory(name="Release Notes Writer"))
    invoice = job.invoice
    buyer, key = BUYERS[2]
    wallet = InjectedWallet(chain.w3, buyer, key, declines_signatures=True).install(page)
    # Sent from the wallet's account by hand, the unique tail left off.
    rounded = int(invoice.price_units)
    assert rounded < invoice.amount_units
    tx_hash = chain.transfer(rounded, buyer=2).lower()

    page.goto(job.get_absolute_url())
    page.get_by_label("Transaction hash").fill(tx_hash)
    page.get_by_role("button", name="Check").click()
    row = page.locator(f"#payments .payment[data-tx-hash='{tx_hash}']")
    expect(row).to_have_attribute("data-status", "rejected")
    expect(row).to_contain_text("sign with the wallet that sent it")
    claim = row.locator(".claim-button")
    expect(claim).to_be_visible()
    expect(row.locator(".claim-nojs")).to_be_hidden()
    shot("claim-01-signature-required")

    # The buyer first declines the signature request: nothing is claimed, and the page says so.
    claim.click()
    expect(row.locator(".claim-status")).to_contain_text("You declined to sign")
    expect(claim).to_be_enabled()
    invoice.refresh_from_db()
    assert invoice.paid_units == 0

    wallet.declines_signatures = False
    claim.click()
    expect(page.locator("#invoice-paid-row")).to_be_visible()
    expect(page.locator("#invoice-paid")).to_have_text(f"{format_token(rounded, 6)} USDC")
    tail = int(invoice.amount_units) - rounded
    expect(page.locator("#invoice-due")).to_have_text(f"{format_token(tail, 6)} USDC")
    shot("claim-02-claimed")
    [message, account] = [params for method, params in wallet.calls if method == "personal_sign"][
        -1
    ]
    assert bytes.fromhex(message.removeprefix("0x")).decode() == (
        f"Vendo: transaction {tx_hash} pays job {job.public_id}"
    )
    assert account.lower() == buyer.lower()
    claimed = Payment.objects.get(tx_hash=tx_hash)
    assert claimed.invoice_id == invoice.pk
    assert claimed.attribution == Payment.Attribution.SIGNATURE

    # The rest, with the wallet: only what is still due.
    expect(page.locator("#qr-block")).to_be_visible()
    page.locator("#pay-wallet").click()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    [request] = [params[0] for method, params in wallet.calls if method == "eth_sendTransaction"]
    assert request["data"] == transfer_calldata(invoice.recipient, tail)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.paid_units == invoice.amount_units
    top_up = invoice.payments.exclude(pk=claimed.pk).get()
    assert top_up.attribution == Payment.Attribution.TOP_UP
