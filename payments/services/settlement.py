"""Where received money goes: booked into escrow, split at settlement, held, paid out or sent
back to whoever sent it (DESIGN.md, "Settlement").

Every function posts through the ledger inside the caller's transaction, with the invoice's
row locked by the caller where an invoice is concerned.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.models import Agent, OperatorAlert
from marketplace.money import format_token, to_units
from marketplace.services import alert_raise
from payments import chain, signals
from payments.errors import PaymentError
from payments.models import (
    Account,
    Invoice,
    LedgerTransaction,
    OnchainTransfer,
    Payment,
)
from payments.services import transfers
from payments.services.ledger import Move, Ref, balance, ledger_post
from payments.signals import InvoiceEvent

logger = logging.getLogger(__name__)
Kind = LedgerTransaction.Kind
WALLET = Ref(Account.WALLET)
REVENUE = Ref(Account.REVENUE)


def escrow_of(invoice: Invoice) -> Ref:
    return Ref.of(Account.ESCROW, invoice.pk)


def unmatched_of(payment: Payment) -> Ref:
    return Ref.of(Account.UNMATCHED, payment.pk)


def held_of(agent_id: int) -> Ref:
    return Ref.of(Account.AGENT_HELD, agent_id)


def payable_of(agent_id: int) -> Ref:
    return Ref.of(Account.AGENT_PAYABLE, agent_id)


def refund_due_of(address: str) -> Ref:
    return Ref.of(Account.REFUND_DUE, address)


# ------------------------------------------------------------------------------
# Money in
# ------------------------------------------------------------------------------


def payment_book(*, payment: Payment, invoice: Invoice | None) -> None:
    """Book a transfer once it is confirmed (wallet -> escrow, or -> unmatched), and take it
    back out if a reorganisation removed it after that."""
    confirmed = payment.status == Payment.Status.CONFIRMED
    if confirmed == payment.is_booked:
        return
    home = escrow_of(invoice) if invoice is not None else unmatched_of(payment)
    amount = int(payment.amount_units)
    if confirmed:
        ledger_post(
            kind=Kind.RECEIVED if invoice is not None else Kind.RECEIVED_UNMATCHED,
            moves=[Move(WALLET, home, amount)],
            memo=f"{payment.tx_hash}#{payment.log_index} from {payment.from_address}",
            invoice=invoice,
            payment=payment,
        )
    else:
        _reverse_received(payment, invoice, home, amount)
    Payment.objects.filter(pk=payment.pk).update(is_booked=confirmed)
    payment.is_booked = confirmed


def _reverse_received(payment: Payment, invoice: Invoice | None, home: Ref, amount: int) -> None:
    """Take a reverted transfer off the books: from where it sits, else from revenue."""
    locked = OnchainTransfer.objects.select_for_update().filter(payment=payment).order_by("pk")
    for transfer in list(locked):
        if transfer.status == OnchainTransfer.Status.QUEUED:
            transfer_cancel(transfer=transfer)
    available = min(balance(home), amount)
    moves = [Move(home, WALLET, available)] if available else []
    if amount > available:
        # Already settled or refunded: the platform bears the loss, and an operator looks.
        moves.append(Move(REVENUE, WALLET, amount - available))
        alert_raise(
            kind=OperatorAlert.Kind.PAYMENT_REVERTED,
            key=f"payment:{payment.pk}",
            message=(
                f"Transfer {payment.tx_hash} of {format_token(amount, payment.token_decimals)} "
                f"USDC was taken off the chain after its money had moved on"
                f"{f' (invoice {invoice.reference})' if invoice else ''}: the platform "
                "bears the loss unless it is mined again."
            ),
        )
    ledger_post(
        kind=Kind.REVERSED,
        moves=moves,
        memo=f"{payment.tx_hash}#{payment.log_index} reverted",
        invoice=invoice,
        payment=payment,
    )


def unmatched_release(*, payment: Payment, invoice: Invoice) -> None:
    """Move a booked unmatched transfer into the invoice's escrow (it was just attributed).

    A refund of it that is still queued is cancelled; one already signed cannot be.
    """
    _cancel_refunds(
        OnchainTransfer.objects.filter(payment=payment),
        refusal="This transfer has already been sent back to its sender.",
    )
    if payment.is_booked:
        ledger_post(
            kind=Kind.ATTRIBUTED,
            moves=[Move(unmatched_of(payment), escrow_of(invoice), int(payment.amount_units))],
            memo=f"{payment.tx_hash}#{payment.log_index} attributed",
            invoice=invoice,
            payment=payment,
        )


def _cancel_refunds(refunds, *, refusal: str) -> None:
    """Cancel these refunds, all of them or none: refuse if one has left (been signed).

    Every row is locked before any is judged, so a sender signing one at the same moment either
    finishes first (and the refusal sees it) or waits and then finds it cancelled.
    """
    locked = list(refunds.select_for_update().order_by("pk"))
    if any(
        t.status not in (OnchainTransfer.Status.QUEUED, OnchainTransfer.Status.CANCELLED)
        for t in locked
    ):
        raise PaymentError(refusal, code="refund_sent")
    for transfer in locked:
        if transfer.status == OnchainTransfer.Status.QUEUED:
            transfer_cancel(transfer=transfer)


# ------------------------------------------------------------------------------
# Refunds
# ------------------------------------------------------------------------------


def escrow_refund(
    *, invoice: Invoice, cause: str, amount_units: int | None = None, not_before=None
) -> int:
    """Send back what the invoice's escrow holds (or `amount_units` of it), each booked payment
    to its own sender, newest first; return the units refunded."""
    available = balance(escrow_of(invoice))
    amount = available if amount_units is None else min(int(amount_units), available)
    if amount <= 0:
        return 0
    refunded = 0
    parts = _allocate(invoice, amount)
    for payment, part in parts:
        _refund(
            source=escrow_of(invoice),
            payment=payment,
            invoice=invoice,
            amount=part,
            cause=cause,
            not_before=not_before,
        )
        refunded += part
    Invoice.objects.filter(pk=invoice.pk).update(
        refunded_units=int(invoice.refunded_units) + refunded
    )
    invoice.refunded_units = int(invoice.refunded_units) + refunded
    signals.send(
        invoice,
        InvoiceEvent.REFUNDED,
        f"{format_token(refunded, invoice.token_decimals)} USDC is on its way back to "
        f"the sender{'s' if len({payment.from_address for payment, _ in parts}) > 1 else ''}"
        f" ({OnchainTransfer.Cause(cause).label.lower()}).",
    )
    return refunded


def _allocate(invoice: Invoice, amount: int) -> list[tuple[Payment, int]]:
    """Split `amount` over the invoice's booked payments, newest first, each at most what it
    brought in less what was already sent back for it."""
    parts = []
    payments = invoice.payments.filter(is_booked=True).order_by("-block_number", "-log_index")
    for payment in payments:
        if amount <= 0:
            break
        sent_back = sum(
            int(transfer.amount_units)
            for transfer in payment.refunds.exclude(status=OnchainTransfer.Status.CANCELLED)
        )
        part = min(int(payment.amount_units) - sent_back, amount)
        if part > 0:
            parts.append((payment, part))
            amount -= part
    if amount > 0:
        raise PaymentError(f"{amount} units in escrow for invoice {invoice.pk} have no payer.")
    return parts


def _refund(
    *,
    source: Ref,
    payment: Payment,
    invoice: Invoice | None,
    amount: int,
    cause: str,
    not_before=None,
):
    due = refund_due_of(payment.from_address)
    ledger_post(
        kind=Kind.REFUND,
        moves=[Move(source, due, amount)],
        memo=f"Refund to {payment.from_address} ({cause})",
        invoice=invoice,
        payment=payment,
    )
    return transfers.transfer_queue(
        kind=OnchainTransfer.Kind.REFUND,
        cause=cause,
        source=due,
        to_address=payment.from_address,
        amount_units=amount,
        token_decimals=payment.token_decimals,
        invoice=invoice,
        payment=payment,
        not_before=not_before,
    )


def unmatched_refund_due() -> int:
    """Send unmatched transfers back to their senders once nobody claimed them in time.

    Dust stays for operators: each refund costs gas, and a script must not make Vendo pay
    for a thousand of them.
    """
    cutoff = timezone.now() - timedelta(hours=settings.UNMATCHED_REFUND_HOURS)
    minimum = to_units(settings.UNMATCHED_REFUND_MINIMUM, chain.token_decimals())
    candidates = Payment.objects.unmatched().filter(
        is_booked=True, created_at__lte=cutoff, amount_units__gte=minimum
    )
    count = 0
    for payment_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            rest = balance(unmatched_of(payment))
            if not payment.is_unmatched or rest <= 0:
                continue
            _refund(
                source=unmatched_of(payment),
                payment=payment,
                invoice=None,
                amount=rest,
                cause=OnchainTransfer.Cause.UNMATCHED,
            )
            count += 1
    return count


def transfer_cancel(*, transfer: OnchainTransfer) -> None:
    """Cancel a queued refund: its money goes back where it came from (escrow or unmatched)."""
    transfers.transfer_cancel(transfer=transfer)
    payment = transfer.payment
    source = (
        escrow_of(transfer.invoice) if transfer.invoice_id is not None else unmatched_of(payment)
    )
    ledger_post(
        kind=Kind.REFUND,
        moves=[Move(refund_due_of(transfer.to_address), source, int(transfer.amount_units))],
        memo=f"Refund {transfer.pk} cancelled",
        invoice=transfer.invoice,
        payment=payment,
        transfer=transfer,
    )
    if transfer.invoice_id is not None:
        Invoice.objects.filter(pk=transfer.invoice_id).update(
            refunded_units=F("refunded_units") - int(transfer.amount_units)
        )


def invoice_refunds_cancel(*, invoice: Invoice) -> None:
    """Take back the invoice's refunds that have not left (an operator replays its job).

    Refuse if one has been signed: it will reach the chain, so the money is no longer here.
    """
    _cancel_refunds(
        OnchainTransfer.objects.filter(invoice=invoice, kind=OnchainTransfer.Kind.REFUND),
        refusal="The buyer's refund has already been sent on chain, so the job cannot run again.",
    )
    Invoice.objects.filter(pk=invoice.pk).update(settled_at=None)
    invoice.settled_at = None
    invoice.refresh_from_db(fields=["refunded_units"])


# ------------------------------------------------------------------------------
# Settlement of a delivered job, disputes, payouts
# ------------------------------------------------------------------------------


def invoice_settle(*, invoice: Invoice, agent_id: int, share_units: int) -> None:
    """Split a paid invoice: the agent's share held, the fee and tail to the platform, any
    excess back to its sender. The caller holds the invoice's lock."""
    if invoice.settled_at:
        return
    price = int(invoice.price_units)
    amount = int(invoice.amount_units)
    share = min(int(share_units), price)
    fee = amount - share
    ledger_post(
        kind=Kind.SETTLED,
        moves=[
            Move(escrow_of(invoice), held_of(agent_id), share),
            Move(escrow_of(invoice), REVENUE, fee),
        ],
        memo=f"Invoice {invoice.reference}: {share} to agent {agent_id}, {fee} fee and tail",
        invoice=invoice,
    )
    invoice.agent_id = agent_id
    invoice.share_units, invoice.fee_units, invoice.held_units = share, fee, share
    invoice.settled_at = timezone.now()
    invoice.save(
        update_fields=[
            "agent",
            "share_units",
            "fee_units",
            "held_units",
            "settled_at",
            "updated_at",
        ]
    )
    if int(invoice.excess_units) > 0:  # escrow holds what was paid: the amount and the excess
        escrow_refund(invoice=invoice, cause=OnchainTransfer.Cause.EXCESS)


def invoice_refund_all(*, invoice: Invoice, cause: str, not_before=None) -> int:
    """Send back everything the invoice's escrow holds, and close its books."""
    refunded = escrow_refund(invoice=invoice, cause=cause, not_before=not_before)
    if not invoice.settled_at:
        invoice.settled_at = timezone.now()
        invoice.save(update_fields=["settled_at", "updated_at"])
    return refunded


def earnings_release(*, invoice: Invoice) -> int:
    """Make the agent's held share of a settled invoice payable (its dispute window closed,
    or an operator upheld the job). Return the units released."""
    held = int(invoice.held_units)
    if held and invoice.agent_id:
        ledger_post(
            kind=Kind.RELEASED,
            moves=[Move(held_of(invoice.agent_id), payable_of(invoice.agent_id), held)],
            memo=f"Invoice {invoice.reference}: share released",
            invoice=invoice,
        )
    invoice.held_units = 0
    invoice.released_at = timezone.now()
    invoice.save(update_fields=["held_units", "released_at", "updated_at"])
    return held


def dispute_refund(*, invoice: Invoice, amount_units: int) -> int:
    """Refund `amount_units` of a settled invoice to its payers after a dispute.

    The agent's held share and the platform's fee bear it in proportion to what each took;
    what remains of the share is released to the agent. Return the units refunded.
    """
    share, fee = int(invoice.share_units), int(invoice.fee_units)
    total = share + fee
    amount = min(int(amount_units), total)
    if amount <= 0:
        raise PaymentError("A refund must be more than zero.", code="invalid_amount")
    from_share = min(amount * share // total if total else 0, int(invoice.held_units))
    from_fee = amount - from_share
    ledger_post(
        kind=Kind.REFUND,
        moves=[
            Move(held_of(invoice.agent_id), escrow_of(invoice), from_share),
            Move(REVENUE, escrow_of(invoice), from_fee),
        ],
        memo=f"Dispute on invoice {invoice.reference}: {amount} back to the buyer",
        invoice=invoice,
    )
    invoice.held_units = int(invoice.held_units) - from_share
    invoice.save(update_fields=["held_units", "updated_at"])
    refunded = escrow_refund(invoice=invoice, cause=OnchainTransfer.Cause.DISPUTE)
    earnings_release(invoice=invoice)
    return refunded


def payouts_queue() -> int:
    """Queue one transfer per agent whose payable balance reached PAYOUT_MINIMUM."""
    from payments.services.ledger import balances

    count = 0
    decimals = chain.token_decimals()
    minimum = to_units(settings.PAYOUT_MINIMUM, decimals)
    for ref, amount in balances(Account.AGENT_PAYABLE).items():
        if amount < minimum:
            continue
        with transaction.atomic():
            agent = Agent.objects.select_for_update().get(pk=int(ref))
            amount = balance(payable_of(agent.pk))  # read again under the agent's lock
            if amount < minimum:
                continue
            transfers.transfer_queue(
                kind=OnchainTransfer.Kind.PAYOUT,
                cause=OnchainTransfer.Cause.PAYOUT,
                source=payable_of(agent.pk),
                to_address=agent.payout_address,
                amount_units=amount,
                token_decimals=decimals,
                agent=agent,
            )
            count += 1
    return count
