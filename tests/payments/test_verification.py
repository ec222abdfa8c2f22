"""Every payment check of DESIGN.md on a real anvil chain, one test per rejection reason."""

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from eth_account import Account

from jobs.models import Job
from payments import devchain
from payments.errors import PaymentError
from payments.models import ChainCursor, Invoice, Payment, Submission
from payments.services.submissions import Reason
from payments.services.watcher import payments_recheck, payments_scan
from tests.conftest import BUYERS, reload, submit
from tests.factories import SkillFactory, order

pytestmark = pytest.mark.django_db


def rejected(submission: Submission, reason: str) -> None:
    assert submission.status == Submission.Status.REJECTED
    assert submission.reason == reason
    assert not Payment.objects.filter(tx_hash=submission.tx_hash).exists()


# ------------------------------------------------------------------------------
# Accepted payments
# ------------------------------------------------------------------------------


def test_exact_payment_pays_the_invoice_and_the_job(chain):
    job = order()
    submission = submit(job, chain.transfer(job.invoice.amount_units))
    reload(job)
    payment = job.invoice.payments.get()
    assert submission.status == Submission.Status.ACCEPTED
    assert payment.status == Payment.Status.CONFIRMED
    assert payment.attribution == Payment.Attribution.EXACT
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
    assert Payment.objects.filter(invoice=job.invoice).count() == 1
    assert Submission.objects.filter(invoice=job.invoice).count() == 1


def test_overpayment_pays_and_records_the_excess(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units + 5_000)
    submit(job, tx, signature=sign(tx, job))
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.excess_units == 5_000
    assert job.status == Job.Status.PAID


def test_batch_transfer_pays_two_invoices_in_one_transaction(chain):
    first, second = order(), order()
    tx = devchain.batch_send(
        chain.w3,
        chain.batch_sender,
        chain.token,
        [chain.recipient, chain.recipient],
        [first.invoice.amount_units, second.invoice.amount_units],
        BUYERS[1][1],
    )
    assert submit(first, tx).status == Submission.Status.ACCEPTED
    assert submit(second, tx).status == Submission.Status.ACCEPTED
    [paid_first] = reload(first).invoice.payments.all()
    [paid_second] = reload(second).invoice.payments.all()
    assert paid_first.log_index != paid_second.log_index
    assert first.invoice.status == second.invoice.status == Invoice.Status.PAID


def test_payment_waits_for_confirmations_then_counts(chain, settings):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order()
    submit(job, chain.transfer(job.invoice.amount_units))
    reload(job)
    payment = job.invoice.payments.get()
    assert payment.status == Payment.Status.PENDING
    assert job.invoice.status == Invoice.Status.PROCESSING
    assert job.status == Job.Status.PENDING
    chain.mine(2)
    payments_recheck()
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
    assert payments_scan() == 1
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.payments.get().source == Payment.Source.WATCHER
    assert job.status == Job.Status.PAID
    assert payments_scan() == 0  # reading the same blocks again adds nothing


# ------------------------------------------------------------------------------
# Rejections, one reason each
# ------------------------------------------------------------------------------


def test_malformed_hash_is_refused_with_a_reason():
    job = order()
    with pytest.raises(PaymentError) as error:
        submit(job, "0x1234")
    assert error.value.message == Reason.MALFORMED
    assert not Submission.objects.exists()


def test_unknown_transaction_is_kept_and_checked_again(chain):
    job = order()
    ghost = "0x" + secrets.token_hex(32)
    submission = submit(job, ghost)
    assert (submission.status, submission.reason) == (Submission.Status.WAITING, Reason.NOT_FOUND)
    Submission.objects.filter(pk=submission.pk).update(next_check_at=submission.created_at)
    payments_recheck()
    submission.refresh_from_db()
    assert submission.status == Submission.Status.WAITING
    assert submission.checks == 2


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
    tx_hash = chain.w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    rejected(submit(job, tx_hash.to_0x_hex()), Reason.FAILED)


def test_lookalike_token_is_rejected(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units, token=chain.lookalike)
    rejected(submit(job, tx), Reason.LOOKALIKE.format(address=chain.lookalike))
    assert reload(job).invoice.status == Invoice.Status.OPEN


def test_event_that_is_not_a_three_topic_transfer_is_rejected(chain):
    job = order()
    odd = chain.w3.eth.contract(
        address=chain.odd_transfer, abi=devchain.load_artifact("OddTransfer")["abi"]
    )
    account = Account.from_key(BUYERS[0][1])
    tx = odd.functions.emitTransfer(chain.recipient, job.invoice.amount_units).build_transaction(
        {"from": account.address, "nonce": chain.w3.eth.get_transaction_count(account.address)}
    )
    tx_hash = chain.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    rejected(submit(job, tx_hash.to_0x_hex()), Reason.NOT_TRANSFER)


def test_transfer_to_another_recipient_is_rejected(chain):
    job = order()
    elsewhere = BUYERS[3][0]
    tx = chain.transfer(job.invoice.amount_units, to=elsewhere)
    rejected(
        submit(job, tx),
        Reason.WRONG_RECIPIENT.format(to=elsewhere, recipient=job.invoice.recipient),
    )


def test_invoice_on_another_chain_is_rejected(chain):
    job = order()
    Invoice.objects.filter(pk=job.invoice.pk).update(chain_id=8453)
    tx = chain.transfer(job.invoice.amount_units)
    rejected(submit(job, tx), Reason.WRONG_CHAIN.format(expected=8453, found=31337))


def test_transfer_already_attached_to_another_invoice_is_rejected(chain):
    first, second = order(), order()
    tx = chain.transfer(first.invoice.amount_units)
    submit(first, tx)
    submission = submit(second, tx)
    assert (submission.status, submission.reason) == (
        Submission.Status.REJECTED,
        Reason.ALREADY_USED,
    )
    assert reload(second).invoice.status == Invoice.Status.OPEN


@pytest.mark.django_db(transaction=True)
def test_one_hash_submitted_for_two_jobs_from_50_threads_is_accepted_once(chain):
    skill = SkillFactory()
    first, second = order(skill), order(skill)
    tx = chain.transfer(first.invoice.amount_units)

    def race(n):
        try:
            job = (first, second)[n % 2]
            return submit(job, tx).status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(race, range(50)))
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.invoice == first.invoice
    assert reload(first).invoice.status == Invoice.Status.PAID
    assert reload(second).invoice.status == Invoice.Status.OPEN
    assert first.invoice.paid_units == first.invoice.amount_units


def sign(tx_hash: str, job, buyer: int = 0) -> str:
    from tests.conftest import sign_claim

    return sign_claim(BUYERS[buyer][1], tx_hash, job)
