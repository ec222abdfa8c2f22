"""Settlement on the real chain: every base unit received ends somewhere, exactly once.

Balances are read from the chain (token balanceOf), not only from the database.
"""

import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from jobs.models import DeadLetter, Job, JobEvent
from jobs.services import dead_letter_replay, dispute_open, dispute_resolve, job_transition
from jobs.settlement import jobs_release_earnings, provider_share
from marketplace.models import OperatorAlert
from marketplace.services import alert_raise
from payments import chain as vendo_chain
from payments import devchain
from payments.errors import PaymentError
from payments.models import Account, LedgerEntry, LedgerTransaction, OnchainTransfer, Payment
from payments.services.ledger import Ref, balance, balances, total
from payments.services.reconciliation import ledger_reconcile, ledger_watch
from payments.services.settlement import payouts_queue, unmatched_refund_due
from payments.services.transfers import transfer_send
from payments.services.watcher import invoices_expire
from tests.conftest import (
    BUYERS,
    complete,
    paid,
    pay,
    reload,
    send_transfers,
    sign_claim,
    submit,
    token_balance,
    wait_for,
)
from tests.factories import AgentFactory, OperatorFactory, SkillFactory, order

pytestmark = pytest.mark.django_db

A, B = 0, 1


@pytest.fixture(autouse=True)
def _money_settings(settings, fresh_wallet):
    settings.CHAIN_SCAN_INTERVAL = 0
    settings.FAILED_REFUND_DELAY_SECONDS = 0
    settings.PAYOUT_MINIMUM = Decimal("0.01")


def escrow(job) -> int:
    return balance(Ref.of(Account.ESCROW, job.invoice_id))


def fail(job, stub):
    stub.set_default("status:400")
    from jobs.generation import job_generate

    job_generate(job_id=job.pk)
    return reload(job)


def books_balance() -> None:
    report = ledger_reconcile()
    assert report.ok, report.problems


# ------------------------------------------------------------------------------
# Posting rules and the split
# ------------------------------------------------------------------------------


def test_a_paid_invoice_books_the_whole_amount_into_the_job_escrow(chain):
    job = order()
    pay(job, chain, amount_units=int(job.invoice.amount_units))
    [received] = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.RECEIVED)
    entries = {(e.account, int(e.amount_units)) for e in received.entries.all()}
    amount = int(job.invoice.amount_units)
    assert entries == {(Account.WALLET, amount), (Account.ESCROW, -amount)}
    assert escrow(job) == amount
    books_balance()


def test_completion_splits_escrow_into_the_held_share_and_the_fee(chain):
    job = complete(order(), chain)
    share = provider_share(job.invoice.price_units)
    agent = job.skill.agent
    assert escrow(job) == 0
    assert balance(Ref.of(Account.AGENT_HELD, agent.pk)) == share
    assert total(Account.REVENUE) == int(job.invoice.amount_units) - share
    assert job.invoice.held_units == share
    books_balance()


@pytest.mark.parametrize(
    ("price", "fee_bps"),
    [("0.333333", 1000), ("1.000001", 1000), ("1.234567", 1000), ("9.999999", 333), ("2", 0)],
)
def test_the_split_is_exact_to_the_base_unit(chain, settings, price, fee_bps):
    settings.PLATFORM_FEE_BPS = fee_bps
    job = complete(order(SkillFactory(price=Decimal(price))), chain)
    price_units = int(job.invoice.price_units)
    share = price_units * (10_000 - fee_bps) // 10_000
    assert job.invoice.share_units == share
    assert job.invoice.fee_units == int(job.invoice.amount_units) - share
    assert job.invoice.share_units + job.invoice.fee_units == job.invoice.amount_units
    assert escrow(job) == 0


def test_the_dispute_window_closing_makes_the_share_payable(chain, settings):
    job = complete(order(), chain)
    agent = job.skill.agent
    assert jobs_release_earnings() == 0  # the window is still open
    settings.DISPUTE_WINDOW_SECONDS = 0
    assert jobs_release_earnings() == 1
    share = int(reload(job).invoice.share_units)
    assert balance(Ref.of(Account.AGENT_HELD, agent.pk)) == 0
    assert balance(Ref.of(Account.AGENT_PAYABLE, agent.pk)) == share


def test_a_payout_pays_several_jobs_in_one_transfer_on_chain(chain, settings):
    agent = AgentFactory(payout_address=BUYERS[3][0])
    skill = SkillFactory(agent=agent, price=Decimal("1.333333"))
    jobs = [complete(order(skill, prompt=f"Job {n}"), chain) for n in range(3)]
    settings.DISPUTE_WINDOW_SECONDS = 0
    jobs_release_earnings()
    before = token_balance(chain, agent.payout_address)

    assert payouts_queue() == 1
    send_transfers()

    [payout] = OnchainTransfer.objects.filter(kind=OnchainTransfer.Kind.PAYOUT)
    shares = sum(int(reload(job).invoice.share_units) for job in jobs)
    assert payout.status == OnchainTransfer.Status.CONFIRMED
    assert payout.amount_units == shares
    assert token_balance(chain, agent.payout_address) == before + shares
    assert balance(Ref.of(Account.AGENT_PAYABLE, agent.pk)) == 0
    assert payouts_queue() == 0  # nothing left to pay
    books_balance()


def test_a_payable_balance_below_the_minimum_waits(chain, settings):
    settings.PAYOUT_MINIMUM = Decimal("100")
    complete(order(), chain)
    settings.DISPUTE_WINDOW_SECONDS = 0
    jobs_release_earnings()
    assert payouts_queue() == 0


# ------------------------------------------------------------------------------
# Refunds, each cause, to the sender of each payment, on chain
# ------------------------------------------------------------------------------


def test_a_failed_job_refunds_each_payment_to_its_own_sender(chain, stub):
    job = order(SkillFactory(price=Decimal("3")))
    first = chain.transfer(2_000_000, buyer=A)
    submit(job, first, sign_claim(BUYERS[A][1], first, job))
    second = chain.transfer(reload(job).invoice.due_units, buyer=B)
    submit(job, second, sign_claim(BUYERS[B][1], second, job))
    assert reload(job).status == Job.Status.PAID
    a_before, b_before = token_balance(chain, BUYERS[A][0]), token_balance(chain, BUYERS[B][0])

    fail(job, stub)
    send_transfers()

    refunds = {r.to_address: r for r in OnchainTransfer.objects.filter(invoice=job.invoice)}
    assert set(refunds) == {BUYERS[A][0], BUYERS[B][0]}
    assert all(r.status == OnchainTransfer.Status.CONFIRMED for r in refunds.values())
    assert all(r.cause == OnchainTransfer.Cause.FAILED for r in refunds.values())
    assert token_balance(chain, BUYERS[A][0]) == a_before + 2_000_000
    b_paid = int(job.invoice.amount_units) - 2_000_000
    assert token_balance(chain, BUYERS[B][0]) == b_before + b_paid
    assert escrow(job) == 0
    books_balance()


def test_an_invoice_expiring_part_paid_refunds_the_part(chain):
    job = order()
    tx = chain.transfer(500_000, buyer=B)
    submit(job, tx, sign_claim(BUYERS[B][1], tx, job))
    before = token_balance(chain, BUYERS[B][0])
    job.invoice.__class__.objects.filter(pk=job.invoice_id).update(expires_at=timezone.now())
    invoices_expire()
    send_transfers()
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert (refund.cause, refund.status) == (OnchainTransfer.Cause.EXPIRED, "confirmed")
    assert token_balance(chain, BUYERS[B][0]) == before + 500_000
    assert reload(job).status == Job.Status.EXPIRED
    books_balance()


def test_a_late_payment_goes_back(chain):
    job = order()
    job.invoice.__class__.objects.filter(pk=job.invoice_id).update(expires_at=timezone.now())
    invoices_expire()
    before = token_balance(chain, BUYERS[B][0])
    pay(job, chain, buyer=B, amount_units=int(job.invoice.amount_units))
    send_transfers()
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert refund.cause == OnchainTransfer.Cause.LATE
    assert token_balance(chain, BUYERS[B][0]) == before
    books_balance()


def test_the_excess_of_an_overpayment_goes_back_on_completion(chain):
    job = order()
    tx = chain.transfer(int(job.invoice.amount_units) + 12_345, buyer=B)
    submit(job, tx, sign_claim(BUYERS[B][1], tx, job))
    before = token_balance(chain, BUYERS[B][0])
    complete(job)
    send_transfers()
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert (refund.cause, refund.amount_units) == (OnchainTransfer.Cause.EXCESS, 12_345)
    assert token_balance(chain, BUYERS[B][0]) == before + 12_345
    books_balance()


def test_a_second_payment_of_a_settled_invoice_goes_straight_back(chain):
    job = complete(order(), chain)
    before = token_balance(chain, BUYERS[B][0])
    pay(job, chain, buyer=B, amount_units=int(job.invoice.amount_units))  # paid twice
    send_transfers()
    assert token_balance(chain, BUYERS[B][0]) == before
    books_balance()


def test_a_dispute_refunded_in_part(chain, settings):
    job = complete(order(SkillFactory(price=Decimal("10"))), chain)
    before = token_balance(chain, BUYERS[A][0])
    dispute = dispute_open(job=job, reason="Half of it is wrong.")
    refund = 4_000_000

    dispute_resolve(dispute=dispute, refund_units=refund, note="Half.", user=OperatorFactory())
    send_transfers()

    reload(job)
    assert job.status == Job.Status.REFUNDED
    assert token_balance(chain, BUYERS[A][0]) == before + refund
    agent = job.skill.agent
    share, fee = int(job.invoice.share_units), int(job.invoice.fee_units)
    from_share = refund * share // (share + fee)
    assert balance(Ref.of(Account.AGENT_PAYABLE, agent.pk)) == share - from_share
    assert balance(Ref.of(Account.AGENT_HELD, agent.pk)) == 0
    assert total(Account.REVENUE) == fee - (refund - from_share)
    books_balance()


def test_a_dispute_after_the_window_is_refused(chain, settings):
    job = complete(order(), chain)
    settings.DISPUTE_WINDOW_SECONDS = 0
    from jobs.errors import InvalidTransition

    with pytest.raises(InvalidTransition) as error:
        dispute_open(job=job, reason="Too late.")
    assert error.value.code == "dispute_closed"


def test_an_unmatched_transfer_goes_back_after_its_hours_and_dust_stays(chain, settings):
    from payments.models import ChainCursor
    from payments.services.watcher import payments_scan

    ChainCursor.objects.create(
        chain_id=31337, token_address=chain.token, next_block=chain.w3.eth.block_number + 1
    )
    before = token_balance(chain, BUYERS[B][0])
    chain.transfer(777_777, buyer=B)
    chain.transfer(50_000, buyer=B)  # dust: below UNMATCHED_REFUND_MINIMUM
    payments_scan()
    assert unmatched_refund_due() == 0  # not yet: its sender may still claim it
    settings.UNMATCHED_REFUND_HOURS = 0
    assert unmatched_refund_due() == 1
    send_transfers()
    assert token_balance(chain, BUYERS[B][0]) == before - 50_000
    dust = Payment.objects.get(amount_units=50_000)
    assert balance(Ref.of(Account.UNMATCHED, dust.pk)) == 50_000
    books_balance()


# ------------------------------------------------------------------------------
# Outgoing transfers, exactly once
# ------------------------------------------------------------------------------


def test_a_transfer_redelivered_after_broadcast_is_not_sent_twice(chain, stub):
    job = order()
    pay(job, chain, buyer=B)
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    before = token_balance(chain, BUYERS[B][0])
    nonce_before = chain.w3.eth.get_transaction_count(refund.from_address)

    # The worker signs and broadcasts, then is killed before it records the broadcast.
    transfer_send(transfer_id=refund.pk)
    OnchainTransfer.objects.filter(pk=refund.pk).update(status=OnchainTransfer.Status.SIGNED)
    # The message is redelivered to another worker: the same bytes go out again.
    transfer_send(transfer_id=refund.pk)
    transfer_send(transfer_id=refund.pk)
    send_transfers()

    refund.refresh_from_db()
    assert refund.status == OnchainTransfer.Status.CONFIRMED
    assert token_balance(chain, BUYERS[B][0]) == before + int(refund.amount_units)
    assert chain.w3.eth.get_transaction_count(refund.from_address) == nonce_before + 1
    books_balance()


def test_a_node_that_is_down_delays_a_transfer_and_loses_nothing(chain, stub, settings):
    job = order()
    pay(job, chain, buyer=B)
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    url = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # nothing listens there
    from payments.chain import ChainError

    with pytest.raises(ChainError):
        transfer_send(transfer_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == OnchainTransfer.Status.QUEUED
    settings.CHAIN_RPC_URL = url
    send_transfers()
    refund.refresh_from_db()
    assert refund.status == OnchainTransfer.Status.CONFIRMED


def test_a_signer_out_of_gas_alerts_operators_and_waits(chain, stub, settings):
    from eth_account import Account as EthAccount

    poor = EthAccount.create()
    settings.PLATFORM_SIGNER_KEY = poor.key.to_0x_hex()
    job = order()
    pay(job, chain, buyer=B)
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert transfer_send(transfer_id=refund.pk) == OnchainTransfer.Status.QUEUED
    alert = OperatorAlert.objects.get(kind=OperatorAlert.Kind.SIGNER_GAS, resolved_at=None)
    assert poor.address in alert.message
    refund.refresh_from_db()
    assert refund.status == OnchainTransfer.Status.QUEUED and refund.nonce is None


def test_a_replay_before_the_refund_leaves_cancels_it(chain, stub, settings):
    settings.FAILED_REFUND_DELAY_SECONDS = 600
    job = order()
    pay(job, chain)
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert refund.status == OnchainTransfer.Status.QUEUED

    dead_letter_replay(dead_letter=DeadLetter.objects.get(job=job))

    refund.refresh_from_db()
    assert refund.status == OnchainTransfer.Status.CANCELLED
    assert reload(job).status == Job.Status.PAID
    assert escrow(job) == int(job.invoice.amount_units)
    stub.set_default("ok")
    complete(job)
    assert reload(job).status == Job.Status.COMPLETED
    books_balance()


def test_a_replay_after_the_refund_left_is_refused_with_a_reason(chain, stub):
    job = order()
    pay(job, chain)
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    transfer_send(transfer_id=refund.pk)

    with pytest.raises(PaymentError) as error:
        dead_letter_replay(dead_letter=DeadLetter.objects.get(job=job))

    assert "already been sent" in error.value.message
    assert reload(job).status == Job.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_replay_racing_the_refund_ends_one_way_or_the_other(chain, stub):
    # Marked paid first, so paying the invoice queues nothing for the session's worker: only
    # this test runs (and fails) the job. A replay does queue it, so the session's worker may
    # run it again (and, the stub still answering 400, fail it again) before the checks.
    job = paid(job_transition(job=order(), to=Job.Status.PAID))
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    outcomes = {}
    start = threading.Barrier(2)

    def replay():
        start.wait()
        try:
            dead_letter_replay(dead_letter=DeadLetter.objects.get(job=job))
            outcomes["replay"] = "replayed"
        except PaymentError as error:
            outcomes["replay"] = error.code
        finally:
            connection.close()

    def send():
        start.wait()
        try:
            outcomes["send"] = transfer_send(transfer_id=refund.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=replay), threading.Thread(target=send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    refund.refresh_from_db()
    reload(job)
    if outcomes["replay"] == "replayed":
        assert refund.status == OnchainTransfer.Status.CANCELLED
        assert outcomes["send"] == OnchainTransfer.Status.CANCELLED
        assert refund.raw_tx == ""  # never signed, so never sent
        assert job.events.filter(kind=JobEvent.Kind.RETRYING, message__contains="operator").exists()
    else:
        assert outcomes["replay"] == "refund_sent"
        assert refund.status in (OnchainTransfer.Status.SIGNED, OnchainTransfer.Status.SENT)
        assert job.status == Job.Status.FAILED
    assert ledger_reconcile(against_chain=False).ok


# ------------------------------------------------------------------------------
# The books themselves
# ------------------------------------------------------------------------------


def test_ledger_check_fails_on_a_hand_broken_ledger(chain, capsys):
    complete(order(), chain)
    call_command("ledger_check")  # passes: exit 0
    broken = LedgerTransaction.objects.create(kind=LedgerTransaction.Kind.SETTLED, memo="oops")
    LedgerEntry.objects.create(transaction=broken, account=Account.REVENUE, amount_units=-5)

    with pytest.raises(SystemExit) as exit_code:
        call_command("ledger_check")

    assert exit_code.value.code == 1
    errors = capsys.readouterr().err
    assert f"ledger transaction {broken.pk} sums to -5" in errors
    # Balance it again before the test ends: PostgreSQL checks the deferred rule then.
    LedgerEntry.objects.create(transaction=broken, account=Account.REVENUE, amount_units=5)


def test_ledger_check_fails_on_a_negative_balance(chain, capsys):
    job = complete(order(), chain)
    overdrawn = LedgerTransaction.objects.create(kind=LedgerTransaction.Kind.SETTLED)
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                transaction=overdrawn, account=Account.ESCROW, ref=str(job.invoice_id),
                amount_units=5,
            ),
            LedgerEntry(transaction=overdrawn, account=Account.REVENUE, amount_units=-5),
        ]
    )  # fmt: skip

    with pytest.raises(SystemExit):
        call_command("ledger_check", "--no-chain")

    assert f"account escrow:{job.invoice_id} is negative (-5 units)" in capsys.readouterr().err


def test_ledger_check_sees_money_leaving_the_wallet_outside_the_books(chain, capsys, fresh_wallet):
    complete(order(), chain)
    devchain.transfer(
        chain.w3, chain.token, BUYERS[0][0], 1, fresh_wallet.key.to_0x_hex()
    )  # someone with the key moves one unit behind Vendo's back
    with pytest.raises(SystemExit):
        call_command("ledger_check")
    assert "off by -1" in capsys.readouterr().err


def test_beat_alerts_operators_when_the_books_stay_off_the_chain(chain, fresh_wallet):
    complete(order(), chain)
    alert_raise(kind=OperatorAlert.Kind.LEDGER, message="An old mismatch, since put right.")

    assert ledger_watch().ok
    assert not open_alerts(OperatorAlert.Kind.LEDGER)  # a check that holds clears it

    devchain.transfer(
        chain.w3, chain.token, BUYERS[0][0], 1, fresh_wallet.key.to_0x_hex()
    )  # someone with the key moves one unit behind Vendo's back
    first = ledger_watch()
    assert not first.ok and "off by -1" in first.problems[0]
    assert first.chain_units == first.expected_units - 1
    assert not open_alerts(OperatorAlert.Kind.LEDGER)  # one check alone may have raced

    assert not ledger_watch().ok
    [alert] = open_alerts(OperatorAlert.Kind.LEDGER)
    assert "two checks in a row" in alert.message and "Rule 3" in alert.message


def test_a_check_against_the_chain_counts_a_transfer_that_is_still_confirming(
    chain, fresh_wallet, settings
):
    settings.REQUIRED_CONFIRMATIONS = 3
    job = order()
    chain.transfer(job.invoice.amount_units)  # mined, seen by the watcher, not yet booked

    check = ledger_watch()

    assert check.ok, check.problems
    assert Payment.objects.get(invoice=job.invoice).is_booked is False


def open_alerts(kind) -> list:
    return list(OperatorAlert.objects.filter(kind=kind, resolved_at__isnull=True))


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_unbalanced_transaction_and_any_edit(chain):
    if connection.vendor != "postgresql":
        pytest.skip("the ledger's database rules are PostgreSQL triggers")
    with pytest.raises(DatabaseError), transaction.atomic():
        broken = LedgerTransaction.objects.create(kind=LedgerTransaction.Kind.SETTLED)
        LedgerEntry.objects.create(transaction=broken, account=Account.REVENUE, amount_units=1)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    job = complete(order(), chain)
    entry = LedgerEntry.objects.filter(transaction__invoice=job.invoice).first()
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount_units=0)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_balances_read_per_agent(chain):
    job = complete(order(), chain)
    held = balances(Account.AGENT_HELD)
    assert held == {str(job.skill.agent.pk): int(job.invoice.share_units)}
    assert vendo_chain.token_balance(chain.recipient) >= total(Account.WALLET)


def test_money_on_a_cancelled_invoice_goes_back_on_chain(chain, stub):
    job = order(SkillFactory(payment_mode="on_completion", price=Decimal("2")))
    tx = chain.transfer(1_000_000, buyer=B)  # paid part of it early
    submit(job, tx, sign_claim(BUYERS[B][1], tx, job))
    before = token_balance(chain, BUYERS[B][0])

    fail(job, stub)  # the run fails: nothing more is asked, what was paid goes back
    send_transfers()

    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    assert (refund.cause, refund.status) == (OnchainTransfer.Cause.CANCELLED, "confirmed")
    assert token_balance(chain, BUYERS[B][0]) == before + 1_000_000
    books_balance()


@pytest.mark.django_db(transaction=True)
def test_a_replay_waiting_on_a_refund_being_signed_is_refused(chain, stub):
    """The interleaving that once let both happen: the signer holds the refund's row while it
    signs; the replay must wait for it, then see it signed and refuse, cancelling nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("forcing the interleaving needs PostgreSQL's lock view")
    job = paid(job_transition(job=order(), to=Job.Status.PAID))
    fail(job, stub)
    [refund] = OnchainTransfer.objects.filter(invoice=job.invoice)
    outcome = {}

    def replay():
        try:
            dead_letter_replay(dead_letter=DeadLetter.objects.get(job=job))
            outcome["replay"] = "replayed"
        except PaymentError as error:
            outcome["replay"] = error.code
        finally:
            connection.close()

    with transaction.atomic():  # the signer, mid-way: the row locked, its status changing
        OnchainTransfer.objects.select_for_update().get(pk=refund.pk)
        OnchainTransfer.objects.filter(pk=refund.pk).update(
            status=OnchainTransfer.Status.SIGNED, nonce=10**9, tx_hash="0x" + "ab" * 32
        )
        thread = threading.Thread(target=replay)
        thread.start()
        wait_for(lambda: waiting_on_a_lock(), what="the replay to wait for the signer")
    thread.join(60)

    assert outcome["replay"] == "refund_sent"
    assert reload(job).status == Job.Status.FAILED
    assert ledger_reconcile(against_chain=False).ok


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0
