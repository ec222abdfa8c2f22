"""Writes to invoices and payments.

A buyer's submitted hash and the chain watcher both end in `_attach`, after the same checks
(DESIGN.md, "Payment verification"). Chain reads happen before any database transaction opens.
"""

import logging
import random
import re
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from web3 import Web3

from jobs.models import Job, JobEvent
from payments import chain
from payments.errors import PaymentError
from payments.models import ChainCursor, Invoice, Payment
from payments.money import from_units, to_units

logger = logging.getLogger(__name__)

TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
# The unique tail added to an invoice's price: at most 0.009999 USDC, and usually under
# 0.0001, as it is drawn from the smallest free tails.
TAIL_MAX = 9999
TAIL_CHOICES = 100
TAIL_ATTEMPTS = 30


class Reason:
    """Why a transfer does not count, worded for the buyer."""

    MALFORMED = "That is not a transaction hash: it should be 0x followed by 64 hex digits."
    NOT_FOUND = (
        "The chain does not know this transaction yet. It is checked again until the invoice "
        "expires."
    )
    NEVER_FOUND = "This transaction did not appear on chain before the invoice expired."
    WRONG_CHAIN = (
        "This invoice is payable on chain {expected}, but the transaction is on chain {found}."
    )
    FAILED = "This transaction failed on chain (its status is 0), so no USDC moved."
    NOT_TRANSFER = "This transaction holds no ERC-20 Transfer of USDC."
    LOOKALIKE = (
        "This transfer is of another token that only looks like USDC: it was emitted by "
        "{address}, not by the USDC contract."
    )
    WRONG_RECIPIENT = "This transfer went to {to}, not to the invoice's recipient {recipient}."
    ALREADY_USED = "This transfer has already paid another invoice."
    OTHER_INVOICES = "This transaction's transfers pay other invoices, not this one."
    REORG = "This transfer was dropped by a chain reorganisation before it was confirmed."


# ------------------------------------------------------------------------------
# Invoices
# ------------------------------------------------------------------------------


def invoice_create(*, job: Job, price: Decimal) -> Invoice:
    """Create the job's invoice, its amount made unique among open invoices by a small tail.

    The database's partial unique index is the arbiter: a tail taken by a concurrent order
    raises IntegrityError inside the savepoint, and another tail is tried.
    """
    decimals = chain.token_decimals()
    price_units = to_units(price, decimals)
    fields = {
        "chain_id": chain.chain_id(),
        "token_address": chain.token_address(),
        "recipient": Web3.to_checksum_address(settings.PAYMENT_RECIPIENT),
    }
    expires_at = timezone.now() + timedelta(minutes=settings.INVOICE_TTL_MINUTES)
    for _ in range(TAIL_ATTEMPTS):
        taken = set(
            Invoice.objects.open()
            .filter(
                amount_units__gt=price_units, amount_units__lte=price_units + TAIL_MAX, **fields
            )
            .values_list("amount_units", flat=True)
        )
        free = [tail for tail in range(1, TAIL_MAX + 1) if price_units + tail not in taken]
        if not free:
            break
        # Random among the smallest, so concurrent orders rarely pick the same one.
        tail = random.choice(free[:TAIL_CHOICES])
        try:
            with transaction.atomic():
                return Invoice.objects.create(
                    job=job,
                    token_decimals=decimals,
                    price_units=price_units,
                    tail_units=tail,
                    amount_units=price_units + tail,
                    expires_at=expires_at,
                    **fields,
                )
        except IntegrityError:
            continue
    raise PaymentError(
        "Too many open invoices at this price right now. Try again in a minute.", code="busy"
    )


def invoice_refresh(*, invoice: Invoice) -> Invoice:
    """Recount the invoice's payments and move its status. The caller holds its row lock."""
    from jobs.services import job_mark_paid

    totals = invoice.payments.aggregate(
        paid=Sum("amount_units", filter=Q(status=Payment.Status.CONFIRMED)),
        pending=Sum(
            "amount_units", filter=Q(status=Payment.Status.PENDING, log_index__isnull=False)
        ),
    )
    paid, pending = int(totals["paid"] or 0), int(totals["pending"] or 0)
    was = invoice.status
    if was in (Invoice.Status.EXPIRED, Invoice.Status.PAID_LATE):
        status = Invoice.Status.PAID_LATE if paid + pending else was
    elif was == Invoice.Status.PAID or paid >= invoice.amount_units:
        status = Invoice.Status.PAID
    elif paid + pending >= invoice.amount_units:
        status = Invoice.Status.PROCESSING
    else:
        status = Invoice.Status.OPEN
    invoice.status = status
    invoice.paid_units = paid
    invoice.pending_units = pending
    invoice.excess_units = max(paid - invoice.amount_units, 0)
    if status == Invoice.Status.PAID and not invoice.paid_at:
        invoice.paid_at = timezone.now()
    invoice.save()
    if status == Invoice.Status.PAID and was != Invoice.Status.PAID:
        job_mark_paid(job=invoice.job)
    return invoice


def invoices_expire() -> int:
    """Expire open invoices past their time with nothing on the way; expire their jobs."""
    from jobs.services import job_expire

    expired = 0
    due = Invoice.objects.past_expiry(now=timezone.now()).filter(
        pending_units=0, job__status__in=[Job.Status.PENDING, Job.Status.DELIVERED]
    )
    for invoice_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().select_related("job").get(pk=invoice_id)
            if not invoice.is_open or invoice.pending_units or invoice.expires_at > timezone.now():
                continue
            invoice.status = Invoice.Status.EXPIRED
            invoice.save(update_fields=["status", "updated_at"])
            invoice.payments.filter(status=Payment.Status.PENDING, log_index__isnull=True).update(
                status=Payment.Status.REJECTED, reason=Reason.NEVER_FOUND
            )
            job_expire(job=invoice.job)
            expired += 1
    return expired


# ------------------------------------------------------------------------------
# Payments: the buyer's submitted hash
# ------------------------------------------------------------------------------


def payment_submit(*, job: Job, tx_hash: str) -> list[Payment]:
    """Check the buyer's transaction against the job's invoice and record what it paid."""
    tx_hash = tx_hash.strip()
    if not TX_HASH_RE.match(tx_hash):
        raise PaymentError(Reason.MALFORMED, code="malformed_hash")
    return payment_verify(
        invoice=job.invoice, tx_hash=tx_hash.lower(), source=Payment.Source.SUBMITTED
    )


def payment_verify(*, invoice: Invoice, tx_hash: str, source: str) -> list[Payment]:
    """Apply every check to the transaction's logs and attach those that pay `invoice`."""
    # The node is the configured chain (chain_id() checks), so a receipt it holds is of a
    # transaction valid there: the invoice's chain is the one thing left to compare.
    node_chain = chain.chain_id()
    if invoice.chain_id != node_chain:
        return [_reject(invoice, tx_hash, source, _wrong_chain(invoice, node_chain))]
    receipt = chain.receipt(tx_hash)
    if receipt is None:
        return [_not_found(invoice, tx_hash, source)]
    if receipt["status"] != 1:
        return [_reject(invoice, tx_hash, source, Reason.FAILED)]
    logs = [chain.decode_log(log) for log in receipt["logs"]]
    candidates, reason = _candidates(invoice, logs)
    if not candidates:
        return [_reject(invoice, tx_hash, source, reason)]
    chosen = _for_this_invoice(invoice, candidates)
    if not chosen:
        return [_reject(invoice, tx_hash, source, Reason.OTHER_INVOICES)]
    head = chain.block_number()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("job").get(pk=invoice.pk)
        # The hash is found now: its "not found yet" placeholder has done its work.
        invoice.payments.filter(
            tx_hash=tx_hash, status=Payment.Status.PENDING, log_index__isnull=True
        ).delete()
        payments = [_attach(invoice, log, head, source) for log in chosen]
        invoice_refresh(invoice=invoice)
    return payments


def _wrong_chain(invoice: Invoice, found: int) -> str:
    return Reason.WRONG_CHAIN.format(expected=invoice.chain_id, found=found)


def _candidates(invoice: Invoice, logs: list[chain.TransferLog]) -> tuple[list, str]:
    """Return the logs that are USDC transfers to the invoice's recipient, or why none are."""
    token = chain.token_address()
    reasons: list[str] = []
    candidates = []
    for log in logs:
        if not log.looks_like_transfer:
            continue
        if not log.is_transfer:
            reasons.append(Reason.NOT_TRANSFER)
        elif log.address != token:
            reasons.append(Reason.LOOKALIKE.format(address=log.address))
        elif log.to_address != invoice.recipient:
            reasons.append(
                Reason.WRONG_RECIPIENT.format(to=log.to_address, recipient=invoice.recipient)
            )
        else:
            candidates.append(log)
    # The nearest miss explains best: a USDC transfer to the wrong place, then a look-alike.
    for kind in (Reason.WRONG_RECIPIENT[:20], Reason.LOOKALIKE[:20]):
        for reason in reasons:
            if reason.startswith(kind):
                return candidates, reason
    return candidates, Reason.NOT_TRANSFER


def _for_this_invoice(invoice: Invoice, candidates: list[chain.TransferLog]) -> list:
    """Keep the logs that pay this invoice when one transaction pays several."""
    exact = [
        log for log in candidates if log.amount_units in (invoice.amount_units, invoice.due_units)
    ]
    if exact:
        return exact
    others = set(
        Invoice.objects.open()
        .exclude(pk=invoice.pk)
        .filter(
            chain_id=invoice.chain_id,
            token_address=invoice.token_address,
            recipient=invoice.recipient,
            amount_units__in=[log.amount_units for log in candidates],
        )
        .values_list("amount_units", flat=True)
    )
    return [log for log in candidates if log.amount_units not in others]


def _attach(invoice: Invoice, log: chain.TransferLog, head: int, source: str) -> Payment:
    """Record `log` as paying `invoice`, unless it already pays another one."""
    from jobs.services import job_event

    confirmations = max(head - log.block_number + 1, 0)
    confirmed = confirmations >= settings.REQUIRED_CONFIRMATIONS
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                invoice=invoice,
                source=source,
                chain_id=invoice.chain_id,
                tx_hash=log.tx_hash,
                log_index=log.log_index,
                block_number=log.block_number,
                block_hash=log.block_hash,
                from_address=log.from_address,
                to_address=log.to_address,
                amount_units=log.amount_units,
                confirmations=confirmations,
                status=Payment.Status.CONFIRMED if confirmed else Payment.Status.PENDING,
            )
    except IntegrityError:
        # The log is attached already, by this request's twin or to another invoice.
        existing = Payment.objects.exclude(status=Payment.Status.REJECTED).get(
            chain_id=invoice.chain_id, tx_hash=log.tx_hash, log_index=log.log_index
        )
        if existing.invoice_id == invoice.pk:
            return existing
        return _reject(invoice, log.tx_hash, source, Reason.ALREADY_USED, log_index=log.log_index)
    amount = from_units(log.amount_units, invoice.token_decimals)
    waiting = "" if confirmed else f", waiting for {settings.REQUIRED_CONFIRMATIONS} confirmations"
    job_event(
        job=invoice.job,
        kind=JobEvent.Kind.PAYMENT_SEEN,
        message=f"{amount} USDC seen in transaction {log.tx_hash[:10]}…{waiting}",
        data={"tx_hash": log.tx_hash, "log_index": log.log_index, "amount_units": log.amount_units},
    )
    return payment


def _reject(
    invoice: Invoice, tx_hash: str, source: str, reason: str, *, log_index: int | None = None
) -> Payment:
    # Racing submissions may each record the same rejection; that is harmless, so no lock.
    found = {"invoice": invoice, "tx_hash": tx_hash, "log_index": log_index, "reason": reason}
    existing = Payment.objects.filter(status=Payment.Status.REJECTED, **found).first()
    return existing or Payment.objects.create(
        status=Payment.Status.REJECTED, source=source, chain_id=invoice.chain_id, **found
    )


def _not_found(invoice: Invoice, tx_hash: str, source: str) -> Payment:
    """Keep a hash the chain does not know yet, to check again until the invoice expires."""
    if not invoice.is_open:
        return _reject(invoice, tx_hash, source, Reason.NEVER_FOUND)
    found = {"invoice": invoice, "tx_hash": tx_hash, "log_index": None}
    existing = Payment.objects.filter(status=Payment.Status.PENDING, **found).first()
    return existing or Payment.objects.create(
        status=Payment.Status.PENDING,
        source=source,
        chain_id=invoice.chain_id,
        reason=Reason.NOT_FOUND,
        **found,
    )


# ------------------------------------------------------------------------------
# Payments: the chain watcher
# ------------------------------------------------------------------------------


def payments_scan() -> int:
    """Read the token's Transfer logs to the recipient since the cursor; match them by amount.

    The last REQUIRED_CONFIRMATIONS blocks are read again each time, so a log that a reorg
    moved to a new block is still found. Reading a log twice is harmless.
    """
    token, chain_id, head = chain.token_address(), chain.chain_id(), chain.block_number()
    cursor, _ = ChainCursor.objects.get_or_create(
        chain_id=chain_id,
        token_address=token,
        defaults={"next_block": max(head - settings.CHAIN_SCAN_MAX_BLOCKS + 1, 0)},
    )
    start = max(min(cursor.next_block, head + 1) - settings.REQUIRED_CONFIRMATIONS, 0)
    end = min(head, start + settings.CHAIN_SCAN_MAX_BLOCKS - 1)
    if start > end:
        return 0
    recipient = Web3.to_checksum_address(settings.PAYMENT_RECIPIENT)
    matched = 0
    for log in chain.transfer_logs(to=recipient, from_block=start, to_block=end):
        matched += _match_watched(log, head=head, chain_id=chain_id, token=token)
    ChainCursor.objects.filter(pk=cursor.pk).update(next_block=end + 1, updated_at=timezone.now())
    return matched


def _match_watched(log: chain.TransferLog, *, head: int, chain_id: int, token: str) -> int:
    """Attach a watched log to the invoice its value identifies; return 1 if it was new."""
    used = Payment.objects.filter(chain_id=chain_id, tx_hash=log.tx_hash, log_index=log.log_index)
    if used.exclude(status=Payment.Status.REJECTED).exists():
        return 0
    invoices = Invoice.objects.filter(
        chain_id=chain_id, token_address=token, recipient=log.to_address
    )
    # Its exact amount, else the rest of an underpaid one, else a late payment of an expired one.
    invoice = (
        invoices.open().filter(amount_units=log.amount_units).first()
        or invoices.open()
        .annotate(rest_units=F("amount_units") - F("paid_units") - F("pending_units"))
        .filter(rest_units=log.amount_units)
        .order_by("created_at")
        .first()
        or invoices.filter(
            status__in=[Invoice.Status.EXPIRED, Invoice.Status.PAID_LATE],
            amount_units=log.amount_units,
        )
        .order_by("-created_at")
        .first()
    )
    if invoice is None:
        logger.warning(
            "Unmatched transfer of %s units in %s#%s", log.amount_units, log.tx_hash, log.log_index
        )
        return 0
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("job").get(pk=invoice.pk)
        payment = _attach(invoice, log, head, Payment.Source.WATCHER)
        invoice_refresh(invoice=invoice)
    return int(payment.status != Payment.Status.REJECTED)


def payments_recheck() -> int:
    """Check pending payments again: count confirmations, drop reorged logs, find late hashes."""
    head = chain.block_number()
    changed = 0
    pending = Payment.objects.filter(status=Payment.Status.PENDING).select_related("invoice")
    for payment in pending:
        if payment.log_index is None:
            payment_verify(invoice=payment.invoice, tx_hash=payment.tx_hash, source=payment.source)
            changed += 1
            continue
        receipt = chain.receipt(payment.tx_hash)
        log = _log_in(receipt, payment.log_index)
        with transaction.atomic():
            invoice = (
                Invoice.objects.select_for_update().select_related("job").get(pk=payment.invoice_id)
            )
            payment.refresh_from_db()
            if payment.status != Payment.Status.PENDING:
                continue
            if log is None:
                payment.status = Payment.Status.REJECTED
                payment.reason = Reason.REORG
            else:
                payment.block_number, payment.block_hash = log.block_number, log.block_hash
                payment.confirmations = max(head - log.block_number + 1, 0)
                if payment.confirmations >= settings.REQUIRED_CONFIRMATIONS:
                    payment.status = Payment.Status.CONFIRMED
            payment.save()
            invoice_refresh(invoice=invoice)
            changed += 1
    return changed


def _log_in(receipt, log_index: int) -> chain.TransferLog | None:
    """Return the receipt's log at `log_index`, or None if the receipt or log is gone."""
    if receipt is None or receipt["status"] != 1:
        return None
    for log in receipt["logs"]:
        if log["logIndex"] == log_index:
            return chain.decode_log(log)
    return None


def invoice_extend(*, job: Job) -> None:
    """Start a pay-after-delivery invoice's clock at delivery."""
    Invoice.objects.filter(job=job).update(
        expires_at=timezone.now() + timedelta(minutes=settings.INVOICE_TTL_MINUTES)
    )
