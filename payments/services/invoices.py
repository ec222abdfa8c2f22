"""Invoices: their unique amounts, the recount that moves their status, their clocks.

`invoice_refresh` is the one place an invoice's status changes after it is created; it books
newly confirmed transfers, sends money on a closed invoice back, and reports what happened
through the `invoice_event` hook. Callers hold the invoice's row lock (`invoice_lock`).
"""

import logging
import random
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.money import format_token, to_units
from payments import chain, signals
from payments.errors import PaymentError
from payments.models import Invoice, Payment, Submission
from payments.services import settlement
from payments.signals import InvoiceEvent

logger = logging.getLogger(__name__)

# The unique tail added to an invoice's price, in units of the sixth decimal place: at most
# 0.009999 USDC. Drawn at random among the free ones, so an amount is hard to guess.
TAIL_MAX = 9999
# When a price's tails run short (abandoned orders hold them), silent closed invoices give
# theirs back early; if that is not enough, tails are drawn from a wider band (at most
# 0.099999 USDC) rather than refuse a buyer.
TAIL_PRESSURE = 0.8
TAIL_WIDE_MAX = 99_999
TAIL_ATTEMPTS = 20


def tail_scale(decimals: int) -> int:
    """Return the base units of one step of the tail: the sixth decimal place of the token."""
    return 10 ** (decimals - chain.SMALLEST_TAIL_DECIMALS)


def invoice_create(*, reference: str, price: Decimal, start_clock: bool = True) -> Invoice:
    """Issue an invoice for `price`, its amount made unique among held amounts by a tail.

    The database's partial unique index is the arbiter: a tail taken by a concurrent order
    raises IntegrityError inside the savepoint, and another tail is drawn. Without
    `start_clock` the invoice has no deadline until `invoice_start_clock` (pay after delivery).
    """
    decimals = chain.token_decimals()
    scale = tail_scale(decimals)
    price_units = to_units(price, decimals)
    fields = {
        "chain_id": chain.chain_id(),
        "token_address": chain.token_address(),
        "recipient": chain.recipient(),
    }
    expires_at = (
        timezone.now() + timedelta(minutes=settings.INVOICE_TTL_MINUTES) if start_clock else None
    )
    for _ in range(TAIL_ATTEMPTS):
        tail = _free_tail(price_units, scale, fields)
        if tail is None:
            break
        try:
            with transaction.atomic():
                return Invoice.objects.create(
                    reference=reference,
                    token_decimals=decimals,
                    price_units=price_units,
                    tail_units=tail * scale,
                    amount_units=price_units + tail * scale,
                    expires_at=expires_at,
                    **fields,
                )
        except IntegrityError:
            continue
    raise PaymentError(
        "Too many open invoices at this price right now. Try again in a few minutes.",
        code="busy",
    )


def _free_tail(price_units: int, scale: int, fields: dict) -> int | None:
    """Draw a free tail for the price: from the normal band, reclaiming silent invoices'
    amounts under pressure, else from the wide band; None only if every tail is taken."""
    taken = _taken_tails(price_units, scale, TAIL_WIDE_MAX, fields)
    normal = {tail for tail in taken if tail <= TAIL_MAX}
    if len(normal) >= TAIL_PRESSURE * TAIL_MAX and _reclaim_silent(price_units, scale, fields):
        taken = _taken_tails(price_units, scale, TAIL_WIDE_MAX, fields)
        normal = {tail for tail in taken if tail <= TAIL_MAX}
    if len(normal) < TAIL_MAX:
        return _draw(1, TAIL_MAX, normal)
    if len(taken) - len(normal) < TAIL_WIDE_MAX - TAIL_MAX:
        logger.warning(
            "Tails of price %s units are exhausted: drawing from the wide band.", price_units
        )
        return _draw(TAIL_MAX + 1, TAIL_WIDE_MAX, taken)
    return None


def _taken_tails(price_units: int, scale: int, up_to: int, fields: dict) -> set[int]:
    held = (
        Invoice.objects.holding()
        .filter(
            amount_units__gt=price_units,
            amount_units__lte=price_units + up_to * scale,
            **fields,
        )
        .values_list("amount_units", flat=True)
    )
    return {int(amount - price_units) // scale for amount in held}


def _draw(low: int, high: int, taken: set[int]) -> int:
    # Random draws find a free tail at once unless nearly all are taken; then list them.
    for _ in range(8):
        tail = random.randint(low, high)
        if tail not in taken:
            return tail
    return random.choice([tail for tail in range(low, high + 1) if tail not in taken])


def _reclaim_silent(price_units: int, scale: int, fields: dict) -> int:
    """Free the amounts of this price's closed invoices that never saw a transfer or a hash
    and closed more than INVOICE_SILENT_GRACE_MINUTES ago; return how many."""
    cutoff = timezone.now() - timedelta(minutes=settings.INVOICE_SILENT_GRACE_MINUTES)
    silent = Invoice.objects.holding().filter(
        status__in=[Invoice.Status.EXPIRED, Invoice.Status.CANCELLED],
        closed_at__lte=cutoff,
        amount_units__gt=price_units,
        amount_units__lte=price_units + TAIL_WIDE_MAX * scale,
        payments__isnull=True,
        submissions__isnull=True,
        **fields,
    )
    return Invoice.objects.filter(pk__in=list(silent.values_list("pk", flat=True))).update(
        holds_amount=False
    )


def invoice_lock(*, invoice_id: int) -> Invoice:
    """Return the invoice with its row locked until the caller's transaction ends."""
    return Invoice.objects.select_for_update().get(pk=invoice_id)


def invoice_refresh(*, invoice: Invoice) -> Invoice:
    """Recount the invoice's transfers, move its status, book and refund, and report it.

    A transfer counts towards the invoice if it was attributed while the invoice was open;
    one attributed after it closed is late and goes back to its sender. The caller holds the
    invoice's row lock.
    """
    payments = list(invoice.payments.all())
    counted = [
        p for p in payments if p.status in (Payment.Status.PENDING, Payment.Status.CONFIRMED)
    ]
    paid = sum(int(p.amount_units) for p in counted if p.status == "confirmed" and not p.is_late)
    pending = sum(int(p.amount_units) for p in counted if p.status == "pending" and not p.is_late)
    late = sum(int(p.amount_units) for p in counted if p.is_late)
    was = invoice.status
    status = was
    amount = int(invoice.amount_units)
    if was in Invoice.OPEN_STATUSES or was == Invoice.Status.PAID:
        if paid >= amount:
            status = Invoice.Status.PAID
        elif paid + pending >= amount:
            status = Invoice.Status.PROCESSING
        else:
            status = Invoice.Status.OPEN
    elif was == Invoice.Status.EXPIRED and late:
        status = Invoice.Status.PAID_LATE
    now = timezone.now()
    invoice.status = status
    invoice.paid_units, invoice.pending_units, invoice.late_units = paid, pending, late
    invoice.excess_units = max(paid - amount, 0)
    if status == Invoice.Status.PAID and was != Invoice.Status.PAID:
        invoice.paid_at = invoice.paid_at or now
        # A second transfer of the same amount is recognised as this invoice's for a while.
        invoice.amount_held_until = now + timedelta(minutes=settings.INVOICE_AMOUNT_GRACE_MINUTES)
    if was == Invoice.Status.PAID and status != Invoice.Status.PAID:
        if invoice.holds_amount:
            invoice.amount_held_until = None
        # Owed again after a reorganisation: give the buyer (or the chain) time to pay again.
        invoice.expires_at = max(
            invoice.expires_at or now, now + timedelta(minutes=settings.INVOICE_TTL_MINUTES)
        )
    invoice.save()
    if not invoice.is_open:
        submissions_retire(invoice=invoice)
    for payment in payments:
        settlement.payment_book(payment=payment, invoice=invoice)
    if invoice.settled_at or status in Invoice.CLOSED_STATUSES:
        # Nothing more will be done with this money: send it back to whoever sent it.
        settlement.escrow_refund(invoice=invoice, cause=_refund_cause(invoice))
    if status == Invoice.Status.PAID and was != Invoice.Status.PAID:
        signals.send(invoice, InvoiceEvent.PAID, "The invoice is paid.")
    elif was == Invoice.Status.PAID and status != Invoice.Status.PAID:
        owed = format_token(invoice.owed_units, invoice.token_decimals)
        signals.send(
            invoice,
            InvoiceEvent.UNPAID,
            f"A payment was taken off the chain: {owed} USDC is owed again.",
        )
    elif status == Invoice.Status.PAID_LATE and was != Invoice.Status.PAID_LATE:
        signals.send(
            invoice,
            InvoiceEvent.PAID_LATE,
            "Money arrived after the invoice expired; it is sent back.",
        )
    return invoice


def _refund_cause(invoice: Invoice) -> str:
    from payments.models import OnchainTransfer

    Cause = OnchainTransfer.Cause
    if invoice.settled_at:
        return Cause.EXCESS
    return {
        Invoice.Status.EXPIRED: Cause.EXPIRED,
        Invoice.Status.PAID_LATE: Cause.LATE,
        Invoice.Status.CANCELLED: Cause.CANCELLED,
    }.get(invoice.status, Cause.LATE)


def invoice_start_clock(*, invoice: Invoice) -> Invoice:
    """Give an unpaid invoice its full time to pay from now (a result was just delivered)."""
    if invoice.is_open:
        invoice.expires_at = timezone.now() + timedelta(minutes=settings.INVOICE_TTL_MINUTES)
        invoice.save(update_fields=["expires_at", "updated_at"])
    return invoice


def _close(invoice: Invoice, status: str) -> None:
    now = timezone.now()
    invoice.status = status
    invoice.closed_at = now
    invoice.amount_held_until = now + timedelta(minutes=settings.INVOICE_AMOUNT_GRACE_MINUTES)
    invoice.save(update_fields=["status", "closed_at", "amount_held_until", "updated_at"])


def invoice_cancel(*, invoice: Invoice) -> Invoice:
    """Withdraw an unpaid invoice: nothing more is asked; money already on it goes back."""
    if not invoice.is_open:
        return invoice
    _close(invoice, Invoice.Status.CANCELLED)
    return invoice_refresh(invoice=invoice)


def invoice_reopen(*, invoice: Invoice) -> Invoice:
    """Ask for a cancelled invoice again (its job runs again); its clock starts at delivery.

    Only while its amount is still reserved: after the grace another invoice may hold it.
    """
    if invoice.status != Invoice.Status.CANCELLED:
        return invoice
    if not invoice.holds_amount:
        raise PaymentError(
            "This invoice's amount has been released for other orders: the buyer must order again.",
            code="amount_released",
        )
    invoice.status = Invoice.Status.OPEN
    invoice.closed_at = invoice.amount_held_until = invoice.expires_at = None
    invoice.save(
        update_fields=["status", "closed_at", "amount_held_until", "expires_at", "updated_at"]
    )
    return invoice_refresh(invoice=invoice)


def invoice_expire(*, invoice: Invoice) -> bool:
    """Expire the invoice if its time is up and no transfer is on its way; report it."""
    if not invoice.is_open or invoice.pending_units or invoice.expires_at is None:
        return False
    if invoice.expires_at > timezone.now():
        return False
    _close(invoice, Invoice.Status.EXPIRED)
    invoice_refresh(invoice=invoice)
    signals.send(invoice, InvoiceEvent.EXPIRED, "The invoice expired before it was paid in full.")
    return True


RETIRED_REASONS = {
    Invoice.Status.PAID: (
        "The invoice was paid by another transfer, so this hash is no longer looked for. If "
        "this transaction is mined too, its money is sent back to its sender."
    ),
    Invoice.Status.EXPIRED: (
        "This transaction was not on chain when the invoice expired. If it is mined later, "
        "its money is sent back to its sender."
    ),
    Invoice.Status.CANCELLED: (
        "The invoice was cancelled before this transaction was found on chain. If it is "
        "mined later, its money is sent back to its sender."
    ),
}


def submissions_retire(*, invoice: Invoice) -> int:
    """Stop looking for hashes submitted for an invoice that is no longer open, saying why.

    If such a transaction is mined after all, its transfer is recognised by its amount (held
    for the grace period) or recorded as unmatched, and sent back either way.
    """
    reason = RETIRED_REASONS.get(invoice.status, RETIRED_REASONS[Invoice.Status.EXPIRED])
    return invoice.submissions.filter(status=Submission.Status.WAITING).update(
        status=Submission.Status.RETIRED, reason=reason, code="retired", next_check_at=None
    )


def amounts_release() -> int:
    """Free the amounts of closed invoices whose grace is over, for new invoices to use."""
    return (
        Invoice.objects.holding()
        .filter(amount_held_until__lte=timezone.now())
        .update(holds_amount=False)
    )
