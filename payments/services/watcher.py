"""The chain watcher: transfers nobody submitted, confirmations until final, expiry on time.

- `payments_scan` reads the token's Transfer logs to the recipient from a persisted cursor,
  halving its block range when the node refuses one and growing it back after.
- `payments_recheck` follows every transfer until it is final: confirmations counted, a log
  found again by transaction hash and content (never by index alone), a vanished one
  reverted. Waiting hashes are looked up again with backoff. Each run has a ceiling of calls.
- `invoices_expire` expires an invoice only once the chain has been read up to its head after
  the deadline, so a transfer mined in time always pays in time.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments import chain, signals
from payments.chain import RangeRefused
from payments.models import ChainCursor, Invoice, Payment
from payments.services import settlement
from payments.services.attribution import confirmations, transfer_record
from payments.services.invoices import (
    amounts_release,
    invoice_expire,
    invoice_lock,
    invoice_refresh,
)
from payments.services.submissions import submissions_recheck
from payments.signals import InvoiceEvent

logger = logging.getLogger(__name__)
# Catching up after a long outage takes several scans; expiry waits until one reaches the head.
CATCH_UP_SCANS = 20
REVERTED_WATCH = timedelta(hours=6)


def payments_scan() -> int:
    """Read the next range of Transfer logs to the recipient; return how many were new.

    The last REQUIRED_CONFIRMATIONS blocks are read again each time, so a log that a reorg
    moved to a new block is still found. Reading a log twice is harmless.
    """
    token, chain_id, head = chain.token_address(), chain.chain_id(), chain.block_number()
    cursor, _ = ChainCursor.objects.get_or_create(
        chain_id=chain_id,
        token_address=token,
        defaults={"next_block": max(head - settings.CHAIN_SCAN_MAX_BLOCKS + 1, 0)},
    )
    window = cursor.window or settings.CHAIN_SCAN_MAX_BLOCKS
    start = max(min(cursor.next_block, head + 1) - settings.REQUIRED_CONFIRMATIONS, 0)
    end = min(head, start + window - 1)
    if start > end:
        return 0
    try:
        logs = chain.transfer_logs(to=chain.recipient(), from_block=start, to_block=end)
    except RangeRefused:
        smaller = max((end - start + 1) // 2, 1)
        ChainCursor.objects.filter(pk=cursor.pk).update(window=smaller)
        logger.warning(
            "The node refused %d blocks; reading %d at a time.", end - start + 1, smaller
        )
        raise
    new = 0
    for log in logs:
        if not log.is_transfer:
            continue
        _, created = transfer_record(log=log, source=Payment.Source.WATCHER, head=head)
        new += created
    # Grow back gently, so a node with a fixed limit is asked past it only now and then.
    grown = min(window + max(window // 8, 1), settings.CHAIN_SCAN_MAX_BLOCKS)
    ChainCursor.objects.filter(pk=cursor.pk).update(
        next_block=end + 1, window=grown, updated_at=timezone.now()
    )
    return new


def scan_to_head() -> int | None:
    """Scan until the cursor has passed the head as it is now; return that head, every
    transfer up to it recorded, or None if catching up takes too long."""
    target = chain.block_number()
    for _ in range(CATCH_UP_SCANS):
        payments_scan()
        cursor = ChainCursor.objects.get(
            chain_id=chain.chain_id(), token_address=chain.token_address()
        )
        if cursor.next_block > target:
            return target
    return None


def payments_recheck() -> int:
    """Follow transfers until final and look again for waiting hashes; return the checks made.

    One run makes at most RECHECK_MAX_CALLS receipt lookups, the most overdue first.
    """
    budget = settings.RECHECK_MAX_CALLS
    due = list(
        Payment.objects.filter(is_final=False, next_check_at__lte=timezone.now()).order_by(
            "next_check_at"
        )[:budget]
    )
    if due:
        head, finalized = chain.block_number(), chain.finalized_block()
        by_tx: dict[str, list[Payment]] = defaultdict(list)
        for payment in due:
            by_tx[payment.tx_hash].append(payment)
        for tx_hash, payments in by_tx.items():
            receipt = chain.receipt(tx_hash)
            logs = _transfer_logs(receipt)
            for payment in payments:
                _follow(payment, logs, head, finalized)
        budget -= len(by_tx)
    return len(due) + submissions_recheck(limit=max(budget, 0))


def _transfer_logs(receipt) -> list[chain.TransferLog]:
    if receipt is None or receipt["status"] != 1:
        return []
    return [log for log in map(chain.decode_log, receipt["logs"]) if log.is_transfer]


def _find(payment: Payment, logs: list[chain.TransferLog]) -> chain.TransferLog | None:
    """Find the payment's log again by content; prefer its old position among equals."""
    content = (
        payment.token_address,
        payment.from_address,
        payment.to_address,
        int(payment.amount_units),
    )
    same = [log for log in logs if log.content == content]
    for log in same:
        if log.log_index == payment.log_index:
            return log
    return same[0] if same else None


def _follow(payment: Payment, logs: list[chain.TransferLog], head: int, finalized) -> None:
    log = _find(payment, logs)
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=payment.invoice_id) if payment.invoice_id else None
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        was = payment.status
        now = timezone.now()
        if log is None:
            if was != Payment.Status.REVERTED:
                payment.status = Payment.Status.REVERTED
                payment.reason = (
                    "This transfer was taken off the chain by a reorganisation. If it is "
                    "mined again it counts again; otherwise it is owed again."
                )
                payment.confirmations = 0
            # Watched for a while in case it is mined again, then let go.
            payment.is_final = now - payment.created_at > REVERTED_WATCH
        else:
            payment.log_index, payment.block_number = log.log_index, log.block_number
            payment.block_hash = log.block_hash
            payment.confirmations = confirmations(log.block_number, head)
            enough = payment.confirmations >= settings.REQUIRED_CONFIRMATIONS
            payment.status = Payment.Status.CONFIRMED if enough else Payment.Status.PENDING
            payment.reason = ""
            payment.is_final = enough and (
                (finalized is not None and log.block_number <= finalized)
                or payment.confirmations >= settings.FINAL_CONFIRMATIONS
            )
        waited = (now - payment.created_at).total_seconds()
        payment.next_check_at = now + timedelta(
            seconds=min(max(waited / 4, settings.CHAIN_SCAN_INTERVAL), 600)
        )
        payment.save()
        if invoice is not None:
            invoice_refresh(invoice=invoice)
            if payment.status == Payment.Status.REVERTED and was != Payment.Status.REVERTED:
                signals.send(invoice, InvoiceEvent.PAYMENT_REVERTED, payment.reason, payment)
        else:
            settlement.payment_book(payment=payment, invoice=None)


def invoices_expire() -> int:
    """Expire open invoices past their deadline, after reading the chain up to its head."""
    now = timezone.now()
    amounts_release()
    due = Invoice.objects.due_to_expire(now=now)
    if not due.exists():
        return 0
    if scan_to_head() is None:
        logger.warning("Expiry postponed: the watcher has not caught up with the chain yet.")
        return 0
    expired = 0
    for invoice_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            expired += invoice_expire(invoice=invoice_lock(invoice_id=invoice_id))
    return expired
