"""Every payment check of DESIGN.md on a real anvil chain, one test per rejection reason."""

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from eth_account import Account

from jobs.models import Job
from payments import devchain, services
from payments.errors import PaymentError
from payments.models import ChainCursor, Invoice, Payment
from payments.services import Reason
from tests.conftest import BUYERS
from tests.factories import SkillFactory, order

pytestmark = pytest.mark.django_db


def submit(job, tx_hash):
    return services.payment_submit(job=Job.objects.get(pk=job.pk), tx_hash=tx_hash)


def reload(job):
    job.refresh_from_db()
    job.invoice.refresh_from_db()
    return job


def only_rejection(payments) -> Payment:
    assert len(payments) == 1
    payment = payments[0]
    assert payment.status == Payment.Status.REJECTED
    assert payment.log_index is None
    return payment


# ------------------------------------------------------------------------------
# Accepted payments
# ------------------------------------------------------------------------------


def test_exact_payment_pays_the_invoice_and_the_job(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units)
    [payment] = submit(job, tx)
    reload(job)
    assert payment.status == Payment.Status.CONFIRMED
    assert payment.amount_units == job.invoice.amount_units
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.excess_units == 0
    assert job.status == Job.Status.PAID
    assert list(job.events.values_list("kind", flat=True)) == [
        "payment-required",
        "payment-seen",
        "paid",
    ]


def test_submitting_the_same_hash_twice_records_one_payment(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units)
    submit(job, tx)
    submit(job, tx)
    assert Payment.objects.filter(invoice__job=job).count() == 1


def test_underpayment_leaves_the_rest_due_and_a_top_up_completes_it(chain):
    job = order()
    amount = job.invoice.amount_units
    submit(job, chain.transfer(amount - 250_000))
    reload(job)
    assert job.invoice.status == Invoice.Status.OPEN
    assert job.invoice.due_units == 250_000
    assert job.status == Job.Status.PENDING
    submit(job, chain.transfer(250_000))
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.paid_units == amount
    assert job.status == Job.Status.PAID


def test_overpayment_pays_and_records_the_excess(chain):
    job = order()
    submit(job, chain.transfer(job.invoice.amount_units + 5_000))
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.excess_units == 5_000
    assert job.status == Job.Status.PAID


def test_late_payment_is_recorded_for_the_operator_and_never_lost(chain):
    job = order()
    Invoice.objects.filter(pk=job.invoice.pk).update(expires_at=timezone.now() - timedelta(1))
    assert services.invoices_expire() == 1
    reload(job)
    assert job.status == Job.Status.EXPIRED
    [payment] = submit(job, chain.transfer(job.invoice.amount_units))
    reload(job)
    assert payment.status == Payment.Status.CONFIRMED
    assert job.invoice.status == Invoice.Status.PAID_LATE
    assert job.invoice.paid_units == job.invoice.amount_units
    assert job.status == Job.Status.EXPIRED  # the operator decides: refund or run


def test_batch_transfer_pays_two_invoices_in_one_transaction(chain):
    first, second = order(), order()
    token_abi = devchain.load_artifact("TestUSDC")["abi"]
    assert token_abi  # the batch sender pulls TestUSDC with transferFrom
    tx = devchain.batch_send(
        chain.w3,
        chain.batch_sender,
        chain.token,
        [chain.recipient, chain.recipient],
        [first.invoice.amount_units, second.invoice.amount_units],
        BUYERS[1][1],
    )
    [paid_first] = submit(first, tx)
    [paid_second] = submit(second, tx)
    assert paid_first.log_index != paid_second.log_index
    assert reload(first).invoice.status == Invoice.Status.PAID
    assert reload(second).invoice.status == Invoice.Status.PAID
    assert paid_first.amount_units == first.invoice.amount_units


def test_payment_waits_for_confirmations_then_counts(chain, settings):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order()
    [payment] = submit(job, chain.transfer(job.invoice.amount_units))
    reload(job)
    assert payment.status == Payment.Status.PENDING
    assert job.invoice.status == Invoice.Status.PROCESSING
    assert job.status == Job.Status.PENDING
    chain.mine(2)
    services.payments_recheck()
    payment.refresh_from_db()
    reload(job)
    assert payment.status == Payment.Status.CONFIRMED
    assert payment.confirmations == 3
    assert job.invoice.status == Invoice.Status.PAID
    assert job.status == Job.Status.PAID


def test_watcher_finds_a_payment_nobody_submitted(chain):
    head = chain.w3.eth.block_number
    ChainCursor.objects.create(chain_id=31337, token_address=chain.token, next_block=head + 1)
    job = order()
    chain.transfer(job.invoice.amount_units)
    assert services.payments_scan() == 1
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.payments.get().source == Payment.Source.WATCHER
    assert job.status == Job.Status.PAID
    assert services.payments_scan() == 0  # reading the same blocks again adds nothing


def test_watcher_matches_the_rest_of_an_underpaid_invoice(chain):
    head = chain.w3.eth.block_number
    ChainCursor.objects.create(chain_id=31337, token_address=chain.token, next_block=head + 1)
    job = order()
    submit(job, chain.transfer(job.invoice.amount_units - 1_000))
    chain.transfer(1_000)
    services.payments_scan()
    assert reload(job).invoice.status == Invoice.Status.PAID


# ------------------------------------------------------------------------------
# Rejections, one reason each
# ------------------------------------------------------------------------------


def test_malformed_hash_is_refused_with_a_reason():
    job = order()
    with pytest.raises(PaymentError) as error:
        submit(job, "0x1234")
    assert error.value.message == Reason.MALFORMED
    assert not Payment.objects.exists()


def test_unknown_transaction_is_kept_and_checked_again_until_expiry(chain):
    job = order()
    ghost = "0x" + secrets.token_hex(32)
    [payment] = submit(job, ghost)
    assert (payment.status, payment.log_index, payment.reason) == (
        Payment.Status.PENDING,
        None,
        Reason.NOT_FOUND,
    )
    services.payments_recheck()
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    Invoice.objects.filter(pk=job.invoice.pk).update(expires_at=timezone.now() - timedelta(1))
    services.invoices_expire()
    payment.refresh_from_db()
    assert (payment.status, payment.reason) == (Payment.Status.REJECTED, Reason.NEVER_FOUND)


def test_failed_transaction_is_rejected(chain):
    job = order()
    buyer = Account.from_key(BUYERS[2][1])
    token = chain.w3.eth.contract(
        address=chain.token, abi=devchain.load_artifact("TestUSDC")["abi"]
    )
    # More than the buyer holds, with the gas set so the node mines it and it reverts.
    tx = token.functions.transfer(chain.recipient, 10**30).build_transaction(
        {
            "from": buyer.address,
            "gas": 100_000,
            "nonce": chain.w3.eth.get_transaction_count(buyer.address),
            "chainId": 31337,
        }
    )
    signed = buyer.sign_transaction(tx)
    tx_hash = chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    payment = only_rejection(submit(job, tx_hash.to_0x_hex()))
    assert payment.reason == Reason.FAILED


def test_lookalike_token_is_rejected(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units, token=chain.lookalike)
    payment = only_rejection(submit(job, tx))
    assert payment.reason == Reason.LOOKALIKE.format(address=chain.lookalike)
    assert reload(job).invoice.status == Invoice.Status.OPEN


def test_event_that_is_not_a_three_topic_transfer_is_rejected(chain):
    job = order()
    buyer = BUYERS[0][1]
    odd = chain.w3.eth.contract(
        address=chain.odd_transfer, abi=devchain.load_artifact("OddTransfer")["abi"]
    )
    account = Account.from_key(buyer)
    tx = odd.functions.emitTransfer(chain.recipient, job.invoice.amount_units).build_transaction(
        {"from": account.address, "nonce": chain.w3.eth.get_transaction_count(account.address)}
    )
    tx_hash = chain.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    payment = only_rejection(submit(job, tx_hash.to_0x_hex()))
    assert payment.reason == Reason.NOT_TRANSFER


def test_transfer_to_another_recipient_is_rejected(chain):
    job = order()
    elsewhere = BUYERS[3][0]
    tx = chain.transfer(job.invoice.amount_units, to=elsewhere)
    payment = only_rejection(submit(job, tx))
    assert payment.reason == Reason.WRONG_RECIPIENT.format(
        to=elsewhere, recipient=job.invoice.recipient
    )


def test_invoice_on_another_chain_is_rejected(chain):
    job = order()
    Invoice.objects.filter(pk=job.invoice.pk).update(chain_id=8453)
    tx = chain.transfer(job.invoice.amount_units)
    payment = only_rejection(submit(job, tx))
    assert payment.reason == Reason.WRONG_CHAIN.format(expected=8453, found=31337)


def test_transfer_already_attached_to_another_invoice_is_rejected(chain):
    first, second = order(), order()
    tx = chain.transfer(first.invoice.amount_units)
    submit(first, tx)
    [payment] = submit(second, tx)
    assert payment.status == Payment.Status.REJECTED
    assert payment.reason == Reason.ALREADY_USED
    assert reload(second).invoice.status == Invoice.Status.OPEN


def test_reorged_transfer_is_dropped_before_it_counts(chain, settings):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order()
    snapshot = devchain.snapshot(chain.w3)
    [payment] = submit(job, chain.transfer(job.invoice.amount_units))
    assert reload(job).invoice.status == Invoice.Status.PROCESSING
    devchain.revert(chain.w3, snapshot)
    chain.mine(3)
    services.payments_recheck()
    payment.refresh_from_db()
    reload(job)
    assert (payment.status, payment.reason) == (Payment.Status.REJECTED, Reason.REORG)
    assert job.invoice.status == Invoice.Status.OPEN
    assert job.invoice.due_units == job.invoice.amount_units
    assert job.status == Job.Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_one_hash_submitted_for_two_jobs_from_50_threads_is_accepted_once(chain):
    skill = SkillFactory()
    first, second = order(skill), order(skill)
    tx = chain.transfer(first.invoice.amount_units)

    def race(n):
        try:
            job = (first, second)[n % 2]
            return [p.status for p in submit(job, tx)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(race, range(50)))
    accepted = Payment.objects.exclude(status=Payment.Status.REJECTED)
    assert accepted.count() == 1
    assert accepted.get().invoice == first.invoice
    assert reload(first).invoice.status == Invoice.Status.PAID
    assert reload(second).invoice.status == Invoice.Status.OPEN
