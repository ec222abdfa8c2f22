"""The watcher against a real node that reorganises, stalls and refuses: finality, holds,
races between a payment and a delivery, and chain failures that never become a 500."""

import json
import socket
import threading
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction
from django.urls import reverse

from jobs.generation import _complete, job_claim, job_generate, jobs_reap
from jobs.models import Job
from jobs.output import Output
from payments import devchain
from payments.chain import RangeRefused
from payments.models import ChainCursor, Invoice, Payment, Submission
from payments.services.submissions import Reason
from payments.services.watcher import payments_recheck, payments_scan
from payments.tasks import scan_transfers
from tests.conftest import BUYERS, pay, reload, submit, wait_for
from tests.factories import SkillFactory, order

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------
# 4. Finality: a reorganisation after one confirmation
# ------------------------------------------------------------------------------


def test_a_reorg_after_one_confirmation_reverts_the_payment_and_holds_the_result(chain, stub):
    job = order()
    snapshot = devchain.snapshot(chain.w3)
    pay(job, chain)
    assert reload(job).status == Job.Status.PAID  # one confirmation: the job may run

    devchain.revert(chain.w3, snapshot)  # the block holding the transfer is gone
    chain.mine(3)
    payments_recheck()

    payment = Payment.objects.get(invoice=job.invoice)
    assert payment.status == Payment.Status.REVERTED
    assert "reorganisation" in payment.reason
    reload(job)
    assert job.invoice.status == Invoice.Status.OPEN
    assert job.invoice.due_units == job.invoice.amount_units
    job_generate(job_id=job.pk)
    reload(job)
    assert job.status == Job.Status.DELIVERED  # the result is held until paid again
    assert job.invoice.settled_at is None


def test_a_reorged_transfer_mined_again_counts_again(chain):
    job = order()
    snapshot = devchain.snapshot(chain.w3)
    tx = chain.transfer(job.invoice.amount_units)
    raw = chain.w3.eth.get_raw_transaction(tx)
    submit(job, tx)
    devchain.revert(chain.w3, snapshot)
    chain.mine(1)
    payments_recheck()
    assert Payment.objects.get(tx_hash=tx).status == Payment.Status.REVERTED

    chain.w3.eth.send_raw_transaction(raw)  # back from the pool into a new block
    Payment.objects.filter(tx_hash=tx).update(next_check_at=Payment.objects.get().created_at)
    payments_recheck()

    assert Payment.objects.get(tx_hash=tx).status == Payment.Status.CONFIRMED
    assert reload(job).invoice.status == Invoice.Status.PAID


def test_confirmed_payments_are_followed_until_final(chain, settings):
    settings.FINAL_CONFIRMATIONS = 3
    job = order()
    pay(job, chain)
    payment = Payment.objects.get(invoice=job.invoice)
    assert payment.status == Payment.Status.CONFIRMED and not payment.is_final
    chain.mine(2)
    Payment.objects.filter(pk=payment.pk).update(next_check_at=payment.created_at)
    payments_recheck()
    payment.refresh_from_db()
    assert payment.is_final
    assert payment.confirmations == 3


# ------------------------------------------------------------------------------
# 5. A payment during delivery; 6. a failed pay-after-delivery job
# ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_payment_landing_while_the_result_is_saved_completes_the_job(chain, stub):
    if connection.vendor != "postgresql":
        pytest.skip("forcing the interleaving needs PostgreSQL's lock view")
    # Claimed as it is ordered: the message queued at commit finds the job taken, so the
    # session's worker leaves it to this test.
    with transaction.atomic():
        job = order(SkillFactory(payment_mode="on_completion"))
        claimed, token = job_claim(job_id=job.pk)
    tx = chain.transfer(job.invoice.amount_units)
    finished = threading.Event()
    errors = []

    def deliver():
        try:
            _complete(claimed, token, Output(text="# Done", data=None), 10, 5)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()
            finished.set()

    # The payment holds the invoice's lock; the delivery must wait for it, then see it paid.
    with transaction.atomic():
        submit(job, tx)
        thread = threading.Thread(target=deliver)
        thread.start()
        wait_for(lambda: errors or blocked_on_a_lock(), what="the delivery to wait for the payment")
    thread.join(30)
    assert finished.is_set() and not errors, errors
    reload(job)
    assert job.status == Job.Status.COMPLETED
    assert job.invoice.settled_at is not None


def blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        # pg_locks is read live (pg_stat_activity would be a snapshot inside a transaction).
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_the_reaper_completes_a_delivered_job_whose_invoice_is_paid(chain):
    job = order(SkillFactory(payment_mode="on_completion"))
    pay(job, chain)  # paid before the run: the job was queued, nothing else
    Job.objects.filter(pk=job.pk).update(status=Job.Status.DELIVERED)  # the stranded pair
    jobs_reap()
    reload(job)
    assert job.status == Job.Status.COMPLETED
    assert job.invoice.settled_at is not None


def test_a_failed_pay_after_delivery_job_cancels_its_invoice(chain, stub):
    stub.set_default("status:400")
    job = order(SkillFactory(payment_mode="on_completion"))
    job_generate(job_id=job.pk)
    reload(job)
    assert job.status == Job.Status.FAILED
    assert job.invoice.status == Invoice.Status.CANCELLED
    assert job.invoice.holds_amount  # reserved for the grace: late money is recognised
    # Money that still arrives is refunded, never taken as payment.
    submit(job, chain.transfer(job.invoice.amount_units))
    payment = Payment.objects.get(invoice=job.invoice)
    assert payment.is_late
    assert payment.refunds.get().to_address == BUYERS[0][0]
    assert reload(job).status == Job.Status.FAILED


def test_a_pay_after_delivery_order_has_no_deadline_before_it_runs():
    job = order(SkillFactory(payment_mode="on_completion"))
    assert job.invoice.expires_at is None
    assert not Invoice.objects.due_to_expire(now=job.created_at.replace(year=2100)).exists()


# ------------------------------------------------------------------------------
# 7. Chain failures
# ------------------------------------------------------------------------------


@pytest.fixture
def silent_node(settings):
    """A node that accepts connections and never answers (a timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{server.getsockname()[1]}"
    settings.CHAIN_RPC_TIMEOUT = 0.5
    yield
    server.close()


def test_a_node_timeout_on_the_payment_form_is_a_clear_message_not_a_500(
    client, chain, silent_node
):
    job = order_on(chain)
    tx = "0x" + "12" * 32
    response = client.post(reverse("jobs:submit", args=[job.public_id]), {"tx_hash": tx})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "cannot be reached right now" in page
    assert "Your transfer is safe" in page
    submission = Submission.objects.get(tx_hash=tx)
    assert submission.status == Submission.Status.WAITING  # checked again once the node is back


def order_on(chain) -> Job:
    # Ordering reads the token's decimals; an order placed before the node went silent.
    from django.conf import settings

    url = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = chain.url
    try:
        return order()
    finally:
        settings.CHAIN_RPC_URL = url


def test_beat_tasks_log_a_node_timeout_and_back_off(chain, silent_node, caplog):
    assert scan_transfers() == 0
    assert scan_transfers() == 0  # backing off: not even tried
    warnings = [r for r in caplog.records if "chain node failed" in r.getMessage()]
    assert len(warnings) == 1


class RangeLimitingProxy(BaseHTTPRequestHandler):
    """A JSON-RPC node that refuses eth_getLogs over more than `limit` blocks, like many."""

    upstream = ""
    limit = 10

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        call = json.loads(body)
        if call.get("method") == "eth_getLogs":
            query = call["params"][0]
            span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
            if span > self.limit:
                message = f"query exceeds max block range {self.limit}"
                reply = {
                    "jsonrpc": "2.0",
                    "id": call["id"],
                    "error": {"code": -32005, "message": message},
                }
                return self._send(json.dumps(reply).encode())
        request = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as response:
            self._send(response.read())

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_watcher_halves_a_refused_range_and_still_finds_the_transfer(chain, settings):
    RangeLimitingProxy.upstream = chain.url
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeLimitingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = order()
        head = chain.w3.eth.block_number
        ChainCursor.objects.create(
            chain_id=31337, token_address=chain.token, next_block=max(head - 40, 0)
        )
        chain.transfer(job.invoice.amount_units)
        settings.CHAIN_RPC_URL = f"http://127.0.0.1:{server.server_address[1]}"
        refusals = 0
        for _ in range(20):
            try:
                payments_scan()
            except RangeRefused:
                refusals += 1
            if reload(job).invoice.status == Invoice.Status.PAID:
                break
        assert refusals >= 1
        assert job.invoice.status == Invoice.Status.PAID
        assert ChainCursor.objects.get().window <= RangeLimitingProxy.limit + 2
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------
# Bounded rechecks (issue 12): a few waiting hashes, backing off, a ceiling per run
# ------------------------------------------------------------------------------


def test_an_invoice_keeps_only_a_few_hashes_that_are_not_on_chain(chain, settings):
    settings.MAX_WAITING_HASHES_PER_INVOICE = 3
    job = order()
    for n in range(3):
        assert submit(job, f"0x{n:064x}").status == Submission.Status.WAITING
    from payments.errors import PaymentError

    with pytest.raises(PaymentError) as error:
        submit(job, f"0x{99:064x}")
    assert error.value.code == "too_many_waiting_hashes"
    assert Submission.objects.filter(invoice=job.invoice).count() == 3


def test_a_hash_unknown_for_longer_is_looked_up_less_often(chain):
    job = order()
    submission = submit(job, "0x" + "cd" * 32)
    gaps = []
    for _ in range(4):
        Submission.objects.filter(pk=submission.pk).update(next_check_at=submission.created_at)
        payments_recheck()
        submission.refresh_from_db()
        gaps.append((submission.next_check_at - submission.updated_at).total_seconds())
    assert gaps == sorted(gaps) and gaps[-1] >= 4 * gaps[0]


def test_one_recheck_run_has_a_ceiling_of_chain_calls(chain, settings):
    settings.RECHECK_MAX_CALLS = 2
    settings.MAX_WAITING_HASHES_PER_INVOICE = 10
    job = order()
    for n in range(6):
        submit(job, f"0x{n + 1:064x}")
    Submission.objects.update(next_check_at=job.created_at)
    assert payments_recheck() == 2
    assert Submission.objects.filter(checks=2).count() == 2


def test_status_json_amounts_are_strings(client, chain):
    job = order(SkillFactory(price=Decimal("2.5")))
    data = client.get(reverse("jobs:status", args=[job.public_id])).json()
    invoice = data["invoice"]
    assert invoice["amount_units"] == str(job.invoice.amount_units)
    assert all(
        isinstance(invoice[key], str)
        for key in ("amount_units", "paid_units", "pending_units", "due_units", "excess_units")
    )
    assert Reason.NOT_FOUND  # the module's reasons are importable for the page
