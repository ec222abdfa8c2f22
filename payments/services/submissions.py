"""A buyer's submitted transaction hash: every payment check, then attribution decides.

A submission asks Vendo to look at a transaction for an invoice. Each check of DESIGN.md
("Payment verification") has its own reason for the buyer; a Transfer that passes them all is
recorded once, and attribution (not the submitter) decides whose invoice it pays.
"""

import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.money import format_token
from payments import chain
from payments.chain import ChainError
from payments.errors import PaymentError
from payments.models import Invoice, Payment, Submission
from payments.services.attribution import Claim, signature_check, transfer_record

TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")


class Reason:
    """Why a transaction does not pay the invoice, worded for the buyer."""

    MALFORMED = "That is not a transaction hash: it should be 0x followed by 64 hex digits."
    NOT_FOUND = (
        "The chain does not know this transaction yet. Vendo checks it again until the invoice "
        "closes."
    )
    NODE_DOWN = (
        "The chain node cannot be reached right now. Your transfer is safe: if you sent it, it "
        "is on chain, and Vendo checks this hash again by itself. You may also try again in a "
        "minute."
    )
    TOO_MANY_WAITING = (
        "This invoice already has {count} transaction hashes that are not on chain yet. Wait "
        "until one of them is found, or check the hash you copied."
    )
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
    SIGNATURE_REQUIRED = (
        "This transfer of {amount} USDC from {sender} is not this invoice's exact amount "
        "({due} USDC due), and a transaction hash is public, so Vendo cannot tell it is yours. "
        "If you sent it, sign with the wallet that sent it to claim it for this job. "
        "Otherwise it is sent back to {sender} within {hours} hours."
    )
    WRONG_SIGNER = (
        "The signature is not from {sender}, the address that sent this transfer, so it does "
        "not claim it. Sign with the wallet that sent it. Otherwise it is sent back to {sender} "
        "within {hours} hours."
    )
    ALREADY_REFUNDED = "This transfer was not claimed in time and has been sent back to {sender}."


def payment_submit(*, invoice: Invoice, tx_hash: str, signature: str = "") -> Submission:
    """Record the buyer's hash (and claim signature) for the invoice, then check it.

    Raise PaymentError for a malformed hash or signature, ChainError when the node is out of
    reach (the submission is kept and checked again later).
    """
    tx_hash = tx_hash.strip().lower()
    signature = signature.strip()
    if not TX_HASH_RE.match(tx_hash):
        raise PaymentError(Reason.MALFORMED, code="malformed_hash")
    if signature:
        signature_check(signature)  # refuse garbage early
    submission = _record(invoice, tx_hash, signature)
    return submission_check(submission=submission)


def _record(invoice: Invoice, tx_hash: str, signature: str) -> Submission:
    submissions = list(invoice.submissions.all())  # a few per invoice: one read for both checks
    existing = next((s for s in submissions if s.tx_hash == tx_hash), None)
    if existing is not None:
        if signature and signature != existing.signature:
            existing.signature = signature
            existing.status = Submission.Status.WAITING
            existing.save(update_fields=["signature", "status", "updated_at"])
        return existing
    waiting = sum(1 for s in submissions if s.status == Submission.Status.WAITING)
    if waiting >= settings.MAX_WAITING_HASHES_PER_INVOICE:
        raise PaymentError(
            Reason.TOO_MANY_WAITING.format(count=waiting), code="too_many_waiting_hashes"
        )
    try:
        with transaction.atomic():
            return Submission.objects.create(
                invoice=invoice, tx_hash=tx_hash, signature=signature, reason=Reason.NOT_FOUND
            )
    except IntegrityError:  # the same hash, submitted twice at once
        return Submission.objects.get(invoice=invoice, tx_hash=tx_hash)


def submission_check(*, submission: Submission) -> Submission:
    """Look the submission's transaction up on chain and settle what it is."""
    invoice = submission.invoice
    if submission.status == Submission.Status.ACCEPTED:
        return submission
    try:
        node_chain = chain.chain_id()
        if invoice.chain_id != node_chain:
            reason = Reason.WRONG_CHAIN.format(expected=invoice.chain_id, found=node_chain)
            return _reject(submission, reason, "wrong_chain")
        receipt = chain.receipt(submission.tx_hash)
        if receipt is None:
            return _wait(submission, Reason.NOT_FOUND)
        if receipt["status"] != 1:
            return _reject(submission, Reason.FAILED, "failed")
        logs = [chain.decode_log(log) for log in receipt["logs"]]
        candidates, reason, code = _candidates(invoice, logs)
        if not candidates:
            return _reject(submission, reason, code)
        head = chain.block_number()
        claim = Claim(invoice=invoice, signature=submission.signature)
        payments = [
            transfer_record(log=log, source=Payment.Source.SUBMITTED, head=head, claim=claim)[0]
            for log in candidates
        ]
    except ChainError:
        _wait(submission, Reason.NODE_DOWN)
        raise
    return _verdict(submission, payments)


def _verdict(submission: Submission, payments: list[Payment]) -> Submission:
    invoice = submission.invoice
    if any(payment.invoice_id == invoice.pk for payment in payments):
        return _settle(submission, Submission.Status.ACCEPTED, "", "")
    unmatched = [payment for payment in payments if payment.is_unmatched]
    if not unmatched:
        return _reject(submission, Reason.ALREADY_USED, "already_used")
    payment = unmatched[0]
    if payment.refunds.exclude(status="cancelled").exists():
        return _reject(
            submission, Reason.ALREADY_REFUNDED.format(sender=payment.from_address), "refunded"
        )
    words = {
        "amount": format_token(payment.amount_units, payment.token_decimals),
        "sender": payment.from_address,
        "due": format_token(invoice.due_units or invoice.owed_units, invoice.token_decimals),
        "hours": settings.UNMATCHED_REFUND_HOURS,
    }
    if submission.signature:
        return _reject(submission, Reason.WRONG_SIGNER.format(**words), "wrong_signer")
    return _reject(submission, Reason.SIGNATURE_REQUIRED.format(**words), "signature_required")


def _candidates(invoice: Invoice, logs: list[chain.TransferLog]) -> tuple[list, str, str]:
    """Return the logs that are USDC transfers to the invoice's recipient, or why none are."""
    token = chain.token_address()
    misses: dict[str, str] = {}
    candidates = []
    for log in logs:
        if not log.looks_like_transfer:
            continue
        if not log.is_transfer:
            misses.setdefault("not_transfer", Reason.NOT_TRANSFER)
        elif log.address != token:
            misses.setdefault("lookalike", Reason.LOOKALIKE.format(address=log.address))
        elif log.to_address != invoice.recipient:
            misses.setdefault(
                "wrong_recipient",
                Reason.WRONG_RECIPIENT.format(to=log.to_address, recipient=invoice.recipient),
            )
        else:
            candidates.append(log)
    # The nearest miss explains best: a USDC transfer to the wrong place, then a look-alike.
    for code in ("wrong_recipient", "lookalike", "not_transfer"):
        if code in misses:
            return candidates, misses[code], code
    return candidates, Reason.NOT_TRANSFER, "not_transfer"


def _settle(submission: Submission, status: str, reason: str, code: str) -> Submission:
    submission.status, submission.reason, submission.code = status, reason, code
    submission.next_check_at = None
    submission.checks += 1
    submission.save(update_fields=["status", "reason", "code", "next_check_at", "checks"])
    return submission


def _reject(submission: Submission, reason: str, code: str) -> Submission:
    return _settle(submission, Submission.Status.REJECTED, reason, code)


def _wait(submission: Submission, reason: str) -> Submission:
    """Keep looking, less often the longer the chain has not known the hash."""
    if not submission.invoice.is_open:
        return _settle(
            submission,
            Submission.Status.RETIRED,
            "This transaction was not on chain while the invoice was open. If it is mined, "
            "its money is sent back to its sender.",
            "retired",
        )
    delay = min(
        settings.HASH_RECHECK_BASE_SECONDS * 2**submission.checks,
        settings.HASH_RECHECK_MAX_SECONDS,
    )
    submission.status, submission.reason = Submission.Status.WAITING, reason
    submission.code = "not_found" if reason == Reason.NOT_FOUND else "chain_unavailable"
    submission.checks += 1
    submission.next_check_at = timezone.now() + timedelta(seconds=delay)
    submission.save(update_fields=["status", "reason", "code", "checks", "next_check_at"])
    return submission


def submissions_recheck(*, limit: int) -> int:
    """Look again for waiting hashes whose next check is due, at most `limit` of them."""
    due = (
        Submission.objects.filter(
            status=Submission.Status.WAITING, next_check_at__lte=timezone.now()
        )
        .select_related("invoice")
        .order_by("next_check_at")[:limit]
    )
    checked = 0
    for submission in due:
        submission_check(submission=submission)
        checked += 1
    return checked
