"""Money on its way is never asked for twice: the pay block offers only what is still due.

Each test pays with the injected wallet, then checks that the page (and a second tab of the
same job, opened before the payment) shows "Payment on its way" with no QR code, no link and a
disabled button, and that the wallet was asked for one transfer only.
"""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from payments import devchain
from payments.models import Invoice, Payment, Submission
from tests.conftest import BUYERS, submit, wait_for
from tests.e2e.conftest import InjectedWallet, new_tab, recheck_now
from tests.factories import SkillFactory, order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def manual_mining(chain):
    """Turn anvil's automine off: a wallet's hash is known long before its block."""
    chain.w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])
        mine_pending(chain)


def mine_pending(chain) -> None:
    chain.w3.provider.make_request("evm_mine", [])


def sends(wallet: InjectedWallet) -> int:
    return wallet.methods.count("eth_sendTransaction")


def expect_on_its_way(tab, note: str) -> None:
    expect(tab.locator("#on-its-way")).to_be_visible()
    expect(tab.locator("#on-its-way")).to_contain_text("Payment on its way")
    expect(tab.locator("#on-its-way-note")).to_contain_text(note)
    expect(tab.locator("#qr-block")).not_to_be_visible()
    expect(tab.locator("#open-wallet")).not_to_be_visible()
    expect(tab.locator("#next-steps")).not_to_be_visible()
    expect(tab.locator("#pay-wallet")).to_be_disabled()
    expect(tab.locator("#pay-wallet")).to_have_text("Payment on its way")


def test_transfer_awaiting_confirmations_is_on_its_way_and_never_asked_for_again(
    page, shot, chain, settings
):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order(SkillFactory(name="Release Notes Writer"))
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page.context)
    # A second tab of the same job, opened while the invoice was still payable.
    other = new_tab(page)
    other.goto(job.get_absolute_url())
    expect(other.locator("#qr-block")).to_be_visible()
    expect(other.locator("#pay-wallet")).to_be_enabled()

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "processing")
    expect_on_its_way(page, "waiting for confirmations")
    expect(page.locator("#qr-block")).to_have_count(0)
    expect(page.locator("#open-wallet")).to_have_count(0)
    expect(page.locator("#invoice-pending-row")).to_be_visible()
    shot("onitsway-01-confirming")
    page.locator("#pay-wallet").click(force=True)

    # The other tab learns it on its next poll, and stops offering to pay.
    expect_on_its_way(other, "waiting for confirmations")
    other.locator("#pay-wallet").click(force=True)
    shot("onitsway-02-second-tab", of=other)

    chain.mine(2)
    recheck_now()
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    expect(other.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    assert sends(wallet) == 1
    job.invoice.refresh_from_db()
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.paid_units == job.invoice.amount_units


def test_hash_not_yet_mined_is_on_its_way_in_every_tab_and_after_a_reload(
    page, shot, chain, manual_mining
):
    job = order(SkillFactory(name="Release Notes Writer"))
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page.context)
    other = new_tab(page)
    other.goto(job.get_absolute_url())
    expect(other.locator("#pay-wallet")).to_be_enabled()

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    # The wallet answered with a hash the chain does not know yet: Vendo keeps looking.
    row = page.locator("#payments .payment")
    expect(row).to_have_attribute("data-status", "pending")
    [sent] = wallet.sent
    expect(row).to_have_attribute("data-tx-hash", sent.lower())
    expect_on_its_way(page, "not on chain yet")
    shot("onitsway-03-not-mined")
    page.locator("#pay-wallet").click(force=True)
    expect_on_its_way(other, "not on chain yet")
    other.locator("#pay-wallet").click(force=True)

    page.reload()
    expect_on_its_way(page, "not on chain yet")
    expect(page.locator("#qr-block")).to_have_count(0)

    mine_pending(chain)
    submit(job, sent)
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    expect(other.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    assert sends(wallet) == 1
    job.invoice.refresh_from_db()
    assert job.invoice.status == Invoice.Status.PAID


def test_hash_whose_post_was_lost_is_remembered_and_submitted_after_a_reload(
    page, shot, chain, manual_mining
):
    job = order(SkillFactory(name="Release Notes Writer"))
    invoice = job.invoice
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page)
    submit_path = reverse("jobs:submit", args=[job.public_id])
    # The form's post never reaches Vendo (the tab was closed, the network dropped it).
    page.route(
        lambda url: url.endswith(submit_path),
        lambda route: route.fulfill(status=204),
        times=1,
    )

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    expect(page.locator("#wallet-status")).to_contain_text("Transaction sent")
    [sent] = wallet.sent
    remembered = page.evaluate(f"localStorage.getItem('vendo:sent:{invoice.reference}')")
    assert remembered is not None and sent.lower() in remembered
    expect(page.locator("#pay-wallet")).to_be_disabled()
    assert not Submission.objects.filter(tx_hash=sent.lower()).exists()

    # Back on the page: Vendo has never heard of the hash, but this browser remembers it.
    page.reload()
    expect_on_its_way(page, "sent from this browser")
    shot("onitsway-04-remembered")
    page.locator("#pay-wallet").click(force=True)
    # ... and posts it again by itself.
    wait_for(
        lambda: Submission.objects.filter(invoice=invoice, tx_hash=sent.lower()).exists(),
        what="the page to submit the remembered hash",
    )
    row = page.locator(f"#payments .payment[data-tx-hash='{sent.lower()}']")
    expect(row).to_have_attribute("data-status", "pending")
    expect_on_its_way(page, "not on chain yet")

    mine_pending(chain)
    # Paid: the page reloads itself for its new state (wait for that, so nothing below reads
    # the page while it navigates).
    with page.expect_navigation():
        submit(job, sent)
    expect(page.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    assert sends(wallet) == 1
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    # Paid: the browser forgets what it sent for this invoice.
    assert page.evaluate(f"localStorage.getItem('vendo:sent:{invoice.reference}')") is None


def test_payment_taken_back_by_a_reorg_brings_the_qr_code_back(page, shot, chain, settings):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order(SkillFactory(name="Release Notes Writer"))
    buyer, key = BUYERS[1]
    wallet = InjectedWallet(chain.w3, buyer, key).install(page)
    before = devchain.snapshot(chain.w3)

    page.goto(job.get_absolute_url())
    page.locator("#pay-wallet").click()
    expect_on_its_way(page, "waiting for confirmations")

    devchain.revert(chain.w3, before)  # the block holding the transfer is gone
    recheck_now()
    assert job.invoice.payments.get().status == Payment.Status.REVERTED
    # The next poll says something is due again: the page reloads for a fresh QR code.
    expect(page.locator("#qr-block")).to_be_visible()
    expect(page.locator("#on-its-way")).to_be_hidden()
    expect(page.locator("#pay-wallet")).to_be_enabled()
    expect(page.locator("#payments .payment[data-status='reverted']")).to_have_count(1)
    shot("onitsway-05-taken-back")
    assert sends(wallet) == 1


def test_without_javascript_the_pay_block_still_works(browser, live_server, chain, shot):
    job = order(SkillFactory(name="Release Notes Writer"))
    invoice = job.invoice
    rounded_hash = chain.transfer(int(invoice.price_units), buyer=2).lower()
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(job.get_absolute_url())
        expect(tab.locator("#qr-block")).to_be_visible()
        expect(tab.locator("#open-wallet")).to_have_attribute("href", invoice.payment_uri)
        expect(tab.locator("#on-its-way")).to_be_hidden()

        # A rounded transfer: the page says why it does not count, and that claiming it
        # needs the wallet (there is no button that cannot work).
        tab.get_by_label("Transaction hash").fill(rounded_hash)
        tab.get_by_role("button", name="Check").click()
        row = tab.locator(f"#payments .payment[data-tx-hash='{rounded_hash}']")
        expect(row).to_have_attribute("data-status", "rejected")
        expect(row.locator(".claim-button")).to_be_hidden()
        expect(row).to_contain_text("Claiming it needs your browser wallet")

        # The exact amount, pasted by hand, pays.
        tab.get_by_label("Transaction hash").fill(chain.transfer(invoice.amount_units, buyer=2))
        tab.get_by_role("button", name="Check").click()
        expect(tab.locator("#invoice-status")).to_have_attribute("data-status", "paid")
        shot("onitsway-06-without-javascript", of=tab)
    finally:
        context.close()
