"""Whose money is it: the one place a Transfer to the platform is given to an invoice.

A transaction hash is public, so who submits it proves nothing. A transfer belongs to invoice
X only when that is unambiguous (DESIGN.md, "Payment attribution"):

1. its amount is exactly X's amount (amounts of open and recently closed invoices are unique);
2. or it is exactly X's remaining due, sent from an address that already paid X, and no
   other invoice's amount is that value (rule 1 would have taken it);
3. or the sender signed, with the key that sent it, "Vendo: transaction <hash> pays job
   <reference>" for X (EIP-191 personal_sign);
4. or an operator attributes it, with a reason.

Anything else is an unmatched transfer: recorded, shown to operators, and sent back to its
sender after UNMATCHED_REFUND_HOURS.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct

from marketplace.money import format_token
from payments import chain, signals
from payments.errors import PaymentError
from payments.models import Invoice, Payment
from payments.services import settlement
from payments.services.invoices import invoice_lock, invoice_refresh
from payments.signals import InvoiceEvent

# 65 bytes from a key; a contract wallet's signature (ERC-1271) may be longer, within reason.
SIGNATURE_RE = re.compile(r"^0x(?:[0-9a-fA-F]{2}){65,4096}$")
SIGNATURE_MAX_CHARS = 2 + 2 * 4096


def claim_message(*, tx_hash: str, reference: str) -> str:
    """Return the exact text a sender signs to claim a transfer for an invoice."""
    return f"Vendo: transaction {tx_hash.lower()} pays job {reference}"


def signature_check(signature: str) -> None:
    """Refuse a claim signature that cannot be one, before anything is recorded."""
    if not SIGNATURE_RE.match(signature):
        raise PaymentError(
            "The signature is not readable: it should be 0x followed by at least 130 hex digits.",
            code="malformed_signature",
        )


@dataclass(frozen=True)
class Claim:
    """A buyer's claim that the transaction's transfers are for `invoice`, maybe signed."""

    invoice: Invoice
    signature: str = ""

    def signed_by(self, address: str, tx_hash: str) -> bool:
        """Return whether `address` signed the claim message for this transaction.

        A key signs with EIP-191 personal_sign. A contract wallet (a smart account on Base,
        a Safe) has no key: it is asked on chain whether the signature is its own (ERC-1271).
        It sent the transfer, so it is deployed: no counterfactual (ERC-6492) case arises.
        The signature's form was checked when it was submitted (signature_check). Raise
        ChainError when the node cannot be asked.
        """
        if not self.signature:
            return False
        text = claim_message(tx_hash=tx_hash, reference=self.invoice.reference)
        try:
            if Account.recover_message(encode_defunct(text=text), signature=self.signature) == (
                address
            ):
                return True
        except Exception:  # eth_keys' BadSignature and friends: not a key's signature
            pass
        return chain.contract_signed(
            address, defunct_hash_message(text=text), bytes.fromhex(self.signature[2:])
        )


def confirmations(block_number: int, head: int) -> int:
    return max(head - block_number + 1, 0)


def _rule(log: chain.TransferLog, claim: Claim | None, signed: bool):
    """Return (invoice, attribution) for a new transfer by the rules above, or (None, "").

    Called inside a transaction: the invoice found by its exact amount is locked at once.
    """
    same_place = {
        "chain_id": settings.CHAIN_ID,
        "token_address": log.address,
        "recipient": log.to_address,
    }
    exact = (
        Invoice.objects.holding()
        .select_for_update()
        .filter(amount_units=log.amount_units, **same_place)
        .first()
    )
    if exact is not None:
        return exact, Payment.Attribution.EXACT
    paid_before = (
        Invoice.objects.open()
        .filter(
            payments__from_address=log.from_address,
            payments__status__in=[Payment.Status.PENDING, Payment.Status.CONFIRMED],
            **same_place,
        )
        .distinct()
    )
    top_ups = [invoice for invoice in paid_before if invoice.due_units == log.amount_units]
    if len(top_ups) == 1:
        return top_ups[0], Payment.Attribution.TOP_UP
    if claim is not None and signed:
        return claim.invoice, Payment.Attribution.SIGNATURE
    return None, Payment.Attribution.NONE


def _existing(log: chain.TransferLog) -> Payment | None:
    """Find the log's payment again: by position, else by content (a reorg may move it)."""
    same_tx = list(Payment.objects.filter(chain_id=settings.CHAIN_ID, tx_hash=log.tx_hash))
    for payment in same_tx:
        if payment.log_index == log.log_index and _content(payment) == log.content:
            return payment
    for payment in same_tx:
        if _content(payment) == log.content:
            return payment
    return None


def _content(payment: Payment) -> tuple:
    return (
        payment.token_address,
        payment.from_address,
        payment.to_address,
        int(payment.amount_units),
    )


def transfer_record(
    *, log: chain.TransferLog, source: str, head: int, claim: Claim | None = None
) -> tuple[Payment, bool]:
    """Record a Transfer of the token to the platform (once) and give it to its invoice.

    The caller has checked that the log is a Transfer of the configured token to the
    recipient in a successful transaction. A log seen again (by the watcher, a recheck or
    another submission) is the same Payment; an unmatched one may now be claimed by `claim`.
    Return the payment, and whether it was recorded just now.
    """
    log = chain.with_block_time(log)
    signed = claim is not None and claim.signed_by(log.from_address, log.tx_hash)
    existing = _existing(log)
    if existing is not None:
        if existing.is_unmatched and signed:
            payment = payment_attribute(
                payment=existing, invoice=claim.invoice, how=Payment.Attribution.SIGNATURE
            )
            return payment, False
        return existing, False
    with transaction.atomic():
        invoice, how = _rule(log, claim, signed)
        if invoice is not None and how != Payment.Attribution.EXACT:
            invoice = invoice_lock(invoice_id=invoice.pk)
        count = confirmations(log.block_number, head)
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    invoice=invoice,
                    source=source,
                    chain_id=settings.CHAIN_ID,
                    tx_hash=log.tx_hash,
                    log_index=log.log_index,
                    block_number=log.block_number,
                    block_hash=log.block_hash,
                    block_time=log.block_time,
                    token_address=log.address,
                    token_decimals=chain.token_decimals(),
                    from_address=log.from_address,
                    to_address=log.to_address,
                    amount_units=log.amount_units,
                    confirmations=count,
                    status=_status(count),
                    next_check_at=timezone.now(),
                    attribution=how,
                    attributed_at=timezone.now() if invoice is not None else None,
                    is_late=invoice is not None and invoice.status in Invoice.CLOSED_STATUSES,
                )
        except IntegrityError:
            # Recorded a moment ago by a twin (the watcher, or the same hash submitted twice).
            payment = Payment.objects.get(
                chain_id=settings.CHAIN_ID, tx_hash=log.tx_hash, log_index=log.log_index
            )
            return payment, False
        if invoice is None:
            settlement.payment_book(payment=payment, invoice=None)
        else:
            _report_seen(invoice, payment)
            invoice_refresh(invoice=invoice)
    return payment, True


def _status(count: int) -> str:
    if count >= settings.REQUIRED_CONFIRMATIONS:
        return Payment.Status.CONFIRMED
    return Payment.Status.PENDING


def _report_seen(invoice: Invoice, payment: Payment) -> None:
    amount = format_token(payment.amount_units, payment.token_decimals)
    message = f"{amount} USDC seen in transaction {payment.tx_hash[:10]}…"
    if payment.status != Payment.Status.CONFIRMED:
        message += f" (waiting for {settings.REQUIRED_CONFIRMATIONS} confirmations)"
    signals.send(invoice, InvoiceEvent.PAYMENT_SEEN, message, payment=payment)


def payment_attribute(
    *, payment: Payment, invoice: Invoice, how: str, user=None, note: str = ""
) -> Payment:
    """Give an unmatched transfer to `invoice` (a signed claim, or an operator with a note)."""
    if how == Payment.Attribution.OPERATOR and not note.strip():
        raise PaymentError("Say why this transfer belongs to this invoice.", code="note_required")
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=invoice.pk)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if not payment.is_unmatched:
            if payment.invoice_id == invoice.pk:
                return payment
            raise PaymentError(
                "This transfer has already paid another invoice.", code="already_used"
            )
        settlement.unmatched_release(payment=payment, invoice=invoice)
        payment.invoice = invoice
        payment.attribution = how
        payment.attribution_note = note.strip()
        payment.attributed_by = user
        payment.attributed_at = timezone.now()
        payment.is_late = invoice.status in Invoice.CLOSED_STATUSES
        payment.save()
        _report_seen(invoice, payment)
        invoice_refresh(invoice=invoice)
    return payment
