"""Whose money is it: each attack of the attribution review, on the real anvil chain.

A transaction hash is public. Each test plays a stranger who submits someone else's hash, or
a buyer who is owed the truth about theirs.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.models import Job
from payments import devchain
from payments.models import ChainCursor, Invoice, OnchainTransfer, Payment, Submission
from payments.services.attribution import payment_attribute
from payments.services.invoices import amounts_release
from payments.services.watcher import invoices_expire, payments_scan
from tests.conftest import BUYERS, DEPLOYER, reload, sign_claim, submit
from tests.factories import OperatorFactory, SkillFactory, order

pytestmark = pytest.mark.django_db

VICTIM, ATTACKER, OTHER = 0, 1, 2


def watch_from_now(chain) -> None:
    ChainCursor.objects.update_or_create(
        chain_id=31337,
        token_address=chain.token,
        defaults={"next_block": chain.w3.eth.block_number + 1},
    )


def expire(job) -> None:
    Invoice.objects.filter(pk=job.invoice.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert invoices_expire() >= 1
    reload(job)


# ------------------------------------------------------------------------------
# 1. Claiming someone else's transfer
# ------------------------------------------------------------------------------


def test_rounded_transfer_submitted_by_a_stranger_is_refused_and_kept_unmatched(chain):
    victim = order(SkillFactory(price=Decimal("5.000000")))
    cheaper = order(SkillFactory(price=Decimal("1.000000")))
    rounded = 5_000_000  # the victim rounds 5.00xxxx down to 5.000000
    tx = chain.transfer(rounded, buyer=VICTIM)

    stolen = submit(cheaper, tx)

    assert stolen.status == Submission.Status.REJECTED
    assert stolen.code == "signature_required"
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.is_unmatched
    assert payment.from_address == BUYERS[VICTIM][0]
    assert reload(cheaper).invoice.status == Invoice.Status.OPEN
    assert cheaper.status == Job.Status.PENDING
    # The real payer is not told "already used": it claims it with its own signature.
    claimed = submit(victim, tx, signature=sign_claim(BUYERS[VICTIM][1], tx, victim))
    assert claimed.status == Submission.Status.ACCEPTED
    payment.refresh_from_db()
    assert (payment.invoice, payment.attribution) == (victim.invoice, Payment.Attribution.SIGNATURE)
    assert reload(victim).invoice.paid_units == rounded
    assert victim.invoice.due_units == victim.invoice.amount_units - rounded


def test_late_transfer_submitted_by_a_stranger_goes_to_its_own_expired_invoice(chain):
    victim = order(SkillFactory(price=Decimal("2.000000")))
    attacker = order(SkillFactory(price=Decimal("1.000000")))
    expire(victim)
    assert victim.status == Job.Status.EXPIRED
    tx = chain.transfer(victim.invoice.amount_units, buyer=VICTIM)  # paid just too late

    stolen = submit(attacker, tx)

    assert stolen.status == Submission.Status.REJECTED
    assert stolen.code == "already_used"
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.invoice == victim.invoice
    assert payment.is_late
    assert reload(victim).invoice.status == Invoice.Status.PAID_LATE
    assert reload(attacker).invoice.status == Invoice.Status.OPEN
    [refund] = OnchainTransfer.objects.filter(payment=payment)
    assert (refund.to_address, refund.amount_units) == (BUYERS[VICTIM][0], payment.amount_units)
    assert refund.cause == OnchainTransfer.Cause.LATE


def test_due_collision_attack_is_refused_and_the_victim_is_paid(chain):
    skill = SkillFactory(price=Decimal("3.000000"))
    victim = order(skill)
    attacker = order(SkillFactory(price=Decimal("4.000000")))
    # The attacker part-pays its own invoice until what it still owes equals the victim's
    # exact amount, then submits the victim's hash seconds after it is mined.
    part = int(attacker.invoice.amount_units - victim.invoice.amount_units)
    own = chain.transfer(part, buyer=ATTACKER)
    submit(attacker, own, sign_claim(BUYERS[ATTACKER][1], own, attacker))
    assert reload(attacker).invoice.due_units == victim.invoice.amount_units
    tx = chain.transfer(victim.invoice.amount_units, buyer=VICTIM)

    stolen = submit(attacker, tx)

    assert stolen.status == Submission.Status.REJECTED
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.invoice == victim.invoice
    assert payment.attribution == Payment.Attribution.EXACT
    assert reload(victim).invoice.status == Invoice.Status.PAID
    assert victim.status == Job.Status.PAID
    assert reload(attacker).invoice.status == Invoice.Status.OPEN


# ------------------------------------------------------------------------------
# Signed claims and top-ups
# ------------------------------------------------------------------------------


def test_signed_underpayment_then_top_up_from_the_same_sender_pays(chain):
    job = order(SkillFactory(price=Decimal("2.000000")))
    tx = chain.transfer(1_500_000, buyer=OTHER)
    assert submit(job, tx, sign_claim(BUYERS[OTHER][1], tx, job)).status == "accepted"
    rest = reload(job).invoice.due_units
    top_up = chain.transfer(rest, buyer=OTHER)

    # No signature needed: exactly the rest, from an address that already paid this invoice.
    assert submit(job, top_up).status == Submission.Status.ACCEPTED
    assert Payment.objects.get(tx_hash=top_up).attribution == Payment.Attribution.TOP_UP
    assert reload(job).invoice.status == Invoice.Status.PAID
    assert job.status == Job.Status.PAID


def test_top_up_from_another_address_needs_a_signature(chain):
    job = order(SkillFactory(price=Decimal("2.000000")))
    tx = chain.transfer(1_500_000, buyer=OTHER)
    submit(job, tx, sign_claim(BUYERS[OTHER][1], tx, job))
    top_up = chain.transfer(reload(job).invoice.due_units, buyer=ATTACKER)

    assert submit(job, top_up).code == "signature_required"
    assert reload(job).invoice.status == Invoice.Status.OPEN


def test_signed_overpayment_pays_and_keeps_the_excess_for_a_refund(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units + 7, buyer=OTHER)
    assert submit(job, tx).code == "signature_required"
    assert submit(job, tx, sign_claim(BUYERS[OTHER][1], tx, job)).status == "accepted"
    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.invoice.excess_units == 7


def test_a_signature_by_anyone_but_the_sender_claims_nothing(chain):
    victim, attacker = order(), order()
    tx = chain.transfer(victim.invoice.amount_units - 1, buyer=VICTIM)

    signed_by_attacker = sign_claim(BUYERS[ATTACKER][1], tx, attacker)
    submission = submit(attacker, tx, signed_by_attacker)

    assert submission.code == "wrong_signer"
    assert Payment.objects.get(tx_hash=tx).is_unmatched
    assert reload(attacker).invoice.paid_units == 0


def test_a_signature_for_another_job_claims_nothing(chain):
    mine, other = order(), order()
    tx = chain.transfer(mine.invoice.amount_units - 1, buyer=VICTIM)
    # The sender's genuine signature, but for another job: replayed on this one.
    signature = sign_claim(BUYERS[VICTIM][1], tx, other)
    assert submit(mine, tx, signature).code == "wrong_signer"
    assert Payment.objects.get(tx_hash=tx).is_unmatched


@pytest.fixture
def smart_wallet(chain):
    """A contract wallet owned by OTHER's key, holding TestUSDC: it pays, its owner signs."""
    owner = BUYERS[OTHER][0]
    address = devchain.deploy(chain.w3, "SmartWallet", owner, sender=DEPLOYER)
    devchain.mint(chain.w3, chain.token, address, 100 * 10**6, DEPLOYER)
    abi = devchain.load_artifact("SmartWallet")["abi"]
    wallet = chain.w3.eth.contract(address=address, abi=abi)

    def pay(amount_units: int) -> str:
        tx = wallet.functions.transfer(chain.token, chain.recipient, amount_units).transact(
            {"from": owner}
        )
        assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        return tx.to_0x_hex()

    wallet.pay = pay
    return wallet


def test_a_contract_wallet_claims_its_transfer_with_its_owners_signature(chain, smart_wallet):
    job = order()
    tx = smart_wallet.pay(job.invoice.amount_units - 1)
    assert submit(job, tx).code == "signature_required"

    # The wallet has no key: its owner signs, and the wallet vouches for it (ERC-1271).
    claimed = submit(job, tx, sign_claim(BUYERS[OTHER][1], tx, job))

    assert claimed.status == Submission.Status.ACCEPTED
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.from_address == smart_wallet.address
    assert (payment.invoice, payment.attribution) == (job.invoice, Payment.Attribution.SIGNATURE)


@pytest.mark.parametrize("length", [65, 200], ids=["a key's signature", "a long one"])
def test_a_stranger_cannot_sign_for_a_contract_wallet(chain, smart_wallet, length):
    victim, attacker = order(), order()
    tx = smart_wallet.pay(victim.invoice.amount_units - 1)
    signature = sign_claim(BUYERS[ATTACKER][1], tx, attacker)
    signature += "ab" * (length - 65)  # a contract wallet's signature may be any length

    submission = submit(attacker, tx, signature)

    assert submission.code == "wrong_signer"
    assert Payment.objects.get(tx_hash=tx).is_unmatched
    assert reload(attacker).invoice.paid_units == 0


def test_a_wallet_whose_signature_check_never_ends_claims_nothing(chain):
    # Its isValidSignature burns all the gas it is given: the call is bounded, and the answer
    # is "not signed", not "the node is down".
    address = devchain.deploy(chain.w3, "GreedyWallet", sender=DEPLOYER)
    devchain.mint(chain.w3, chain.token, address, 10 * 10**6, DEPLOYER)
    abi = devchain.load_artifact("GreedyWallet")["abi"]
    greedy = chain.w3.eth.contract(address=address, abi=abi)
    job = order()
    tx = greedy.functions.transfer(chain.token, chain.recipient, job.invoice.amount_units - 1)
    tx = tx.transact({"from": DEPLOYER}).to_0x_hex()
    chain.w3.eth.wait_for_transaction_receipt(tx)

    submission = submit(job, tx, sign_claim(BUYERS[VICTIM][1], tx, job))

    assert submission.code == "wrong_signer"
    assert Payment.objects.get(tx_hash=tx).is_unmatched


def test_a_long_signature_from_a_key_wallet_claims_nothing(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units - 1, buyer=VICTIM)
    # A key's own signature with bytes after it: no key signs that, and no contract is asked.
    signature = sign_claim(BUYERS[VICTIM][1], tx, job) + "00" * 10

    assert submit(job, tx, signature).code == "wrong_signer"
    assert Payment.objects.get(tx_hash=tx).is_unmatched


def test_an_operator_attributes_an_unmatched_transfer_with_a_reason(chain):
    job = order()
    tx = chain.transfer(job.invoice.amount_units - 100, buyer=OTHER)
    submit(job, tx)
    payment = Payment.objects.get(tx_hash=tx)
    operator = OperatorFactory()

    payment_attribute(
        payment=payment,
        invoice=job.invoice,
        how=Payment.Attribution.OPERATOR,
        user=operator,
        note="The buyer mailed us the wallet's receipt.",
    )

    payment.refresh_from_db()
    assert payment.invoice == job.invoice
    assert (payment.attributed_by, payment.attribution_note) == (
        operator,
        "The buyer mailed us the wallet's receipt.",
    )
    assert reload(job).invoice.paid_units == payment.amount_units


# ------------------------------------------------------------------------------
# 2. Amounts are not reused at once; 3. expiry at the right moment
# ------------------------------------------------------------------------------


def test_an_expired_amount_is_not_reissued_within_the_grace_period(chain, settings):
    first = order()
    expire(first)
    assert first.invoice.holds_amount
    amounts_release()
    assert reload(first).invoice.holds_amount
    second = order(first.skill)
    assert second.invoice.amount_units != first.invoice.amount_units
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=second.invoice.pk).update(
            tail_units=first.invoice.tail_units, amount_units=first.invoice.amount_units
        )
    Invoice.objects.filter(pk=first.invoice.pk).update(
        amount_held_until=timezone.now() - timedelta(seconds=1)
    )
    assert amounts_release() == 1
    assert not reload(first).invoice.holds_amount


def test_a_transfer_mined_before_expiry_pays_in_time(chain):
    watch_from_now(chain)
    job = order()
    chain.transfer(job.invoice.amount_units, buyer=VICTIM)  # mined, not yet scanned
    Invoice.objects.filter(pk=job.invoice.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    invoices_expire()

    reload(job)
    assert job.invoice.status == Invoice.Status.PAID
    assert job.status == Job.Status.PAID


def test_placeholder_is_retired_when_another_transfer_pays_the_invoice(chain):
    job = order()
    ghost = "0x" + "ab" * 32  # a wallet's "speed up" replaced this transaction
    assert submit(job, ghost).status == Submission.Status.WAITING
    submit(job, chain.transfer(job.invoice.amount_units))

    placeholder = Submission.objects.get(tx_hash=ghost)
    assert placeholder.status == Submission.Status.RETIRED
    assert "paid by another transfer" in placeholder.reason
    assert placeholder.next_check_at is None
    assert not Submission.objects.filter(reason__contains="did not appear").exists()


def test_watcher_records_a_transfer_that_matches_no_invoice_as_unmatched(chain):
    watch_from_now(chain)
    order()
    tx = chain.transfer(1_234_567, buyer=OTHER)
    payments_scan()
    payment = Payment.objects.get(tx_hash=tx)
    assert payment.is_unmatched
    assert (payment.from_address, payment.amount_units) == (BUYERS[OTHER][0], 1_234_567)
    assert payment.block_time is not None
