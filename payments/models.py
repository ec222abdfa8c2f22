"""Invoices, the transfers that pay them, the ledger, and the transfers Vendo sends.

`payments` knows money, never what it is for: an invoice carries an opaque `reference` (the
job's public id) and reports what happens to it through `payments.signals.invoice_event`.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models

from marketplace.models import Agent
from marketplace.money import from_units

# Transfer values are uint256: wider than any integer column, so they are NUMERIC(78, 0).
UINT256 = {"max_digits": 78, "decimal_places": 0}


class InvoiceQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=Invoice.OPEN_STATUSES)

    def due_to_expire(self, *, now):
        """Open invoices whose clock has run out."""
        return self.open().filter(expires_at__lte=now)

    def holding(self):
        """Invoices whose exact amount is reserved: a transfer of it is theirs."""
        return self.filter(holds_amount=True)


class Invoice(models.Model):
    class Status(models.TextChoices):
        # Waiting for a transfer; an underpaid invoice stays open for the rest.
        OPEN = "open", "Awaiting payment"
        # Transfers cover the amount; waiting for confirmations.
        PROCESSING = "processing", "Payment seen, confirming"
        PAID = "paid", "Paid"
        EXPIRED = "expired", "Expired"
        # Money arrived after expiry: it is sent back to its sender.
        PAID_LATE = "paid_late", "Paid after expiry"
        # Withdrawn by the seller (the job failed before it was paid).
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.OPEN, Status.PROCESSING)
    CLOSED_STATUSES = (Status.EXPIRED, Status.PAID_LATE, Status.CANCELLED)

    # What the invoice is for, opaque here: the job's public id. Signed claims name it.
    reference = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    chain_id = models.PositiveBigIntegerField()
    token_address = models.CharField(max_length=42)
    token_decimals = models.PositiveSmallIntegerField()
    recipient = models.CharField(max_length=42)
    # The quoted price in base units; amount_units adds the unique tail.
    price_units = models.DecimalField(**UINT256)
    tail_units = models.DecimalField(**UINT256)
    amount_units = models.DecimalField(**UINT256)
    # Transfers mined in time: confirmed, and seen but not yet confirmed enough.
    paid_units = models.DecimalField(default=0, **UINT256)
    pending_units = models.DecimalField(default=0, **UINT256)
    excess_units = models.DecimalField(default=0, **UINT256)
    # Transfers mined after the invoice expired or was cancelled.
    late_units = models.DecimalField(default=0, **UINT256)
    # None until the clock starts: a pay-after-delivery invoice runs from delivery.
    expires_at = models.DateTimeField(null=True, blank=True)
    # The exact amount stays reserved while this is set (open, or closed within the grace).
    holds_amount = models.BooleanField(default=True)
    amount_held_until = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Its money has gone where it belongs (the seller's share, the fee, refunds): anything
    # that arrives afterwards goes straight back to its sender.
    settled_at = models.DateTimeField(null=True, blank=True)
    # Who earned it, and how it was split at settlement: the agent's share, held until the
    # dispute window closes, then payable; the platform's fee (the rest of the price and
    # the tail).
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    share_units = models.DecimalField(default=0, **UINT256)
    fee_units = models.DecimalField(default=0, **UINT256)
    held_units = models.DecimalField(default=0, **UINT256)
    refunded_units = models.DecimalField(default=0, **UINT256)
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A transfer's value alone identifies the invoice it is for, during and after.
            models.UniqueConstraint(
                fields=["chain_id", "token_address", "recipient", "amount_units"],
                condition=models.Q(holds_amount=True),
                name="invoice_held_amount_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(amount_units=models.F("price_units") + models.F("tail_units")),
                name="invoice_amount_is_price_plus_tail",
            ),
        ]
        indexes = [
            # The expiry sweep.
            models.Index(fields=["status", "expires_at"], name="invoice_status_expires"),
            # Releasing reserved amounts after their grace.
            models.Index(
                fields=["amount_held_until"],
                condition=models.Q(holds_amount=True),
                name="invoice_held_until",
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.pk} ({self.amount} USDC, {self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID

    @property
    def due_units(self) -> int:
        """What is still to send: neither confirmed nor on its way."""
        if not self.is_open:
            return 0
        return max(int(self.amount_units) - int(self.paid_units) - int(self.pending_units), 0)

    @property
    def owed_units(self) -> int:
        """What is still to confirm: the amount less confirmed transfers."""
        return max(int(self.amount_units) - int(self.paid_units), 0)

    def _decimal(self, units) -> Decimal:
        return from_units(units, self.token_decimals)

    @property
    def amount(self) -> Decimal:
        return self._decimal(self.amount_units)

    @property
    def price(self) -> Decimal:
        return self._decimal(self.price_units)

    @property
    def paid(self) -> Decimal:
        return self._decimal(self.paid_units)

    @property
    def pending(self) -> Decimal:
        return self._decimal(self.pending_units)

    @property
    def due(self) -> Decimal:
        return self._decimal(self.due_units)

    @property
    def excess(self) -> Decimal:
        return self._decimal(self.excess_units)

    @property
    def late(self) -> Decimal:
        return self._decimal(self.late_units)

    @property
    def payment_uri(self) -> str:
        """Return the EIP-681 URI for the amount still due; empty when nothing is."""
        if not self.due_units:
            return ""
        return (
            f"ethereum:{self.token_address}@{self.chain_id}/transfer"
            f"?address={self.recipient}&uint256={self.due_units}"
        )


class PaymentQuerySet(models.QuerySet):
    def counted(self):
        """Transfers that still stand on chain."""
        return self.filter(status__in=[Payment.Status.PENDING, Payment.Status.CONFIRMED])

    def unmatched(self):
        return self.counted().filter(invoice__isnull=True)


class Payment(models.Model):
    """One ERC-20 Transfer log of the token to the platform's recipient.

    It belongs to an invoice when attribution says so (payments/services/attribution.py);
    otherwise it is an unmatched transfer, kept for operators and refunded to its sender.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for confirmations"
        CONFIRMED = "confirmed", "Confirmed"
        # A reorganisation took it off the chain (it may come back: then it counts again).
        REVERTED = "reverted", "Reverted"

    class Source(models.TextChoices):
        SUBMITTED = "submitted", "Hash submitted by the buyer"
        WATCHER = "watcher", "Found by the chain watcher"

    class Attribution(models.TextChoices):
        NONE = "", "Unmatched"
        EXACT = "exact", "Exact amount"
        TOP_UP = "top_up", "Rest of the amount, from a sender who paid before"
        SIGNATURE = "signature", "Claimed with the sender's signature"
        OPERATOR = "operator", "Attributed by an operator"

    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    chain_id = models.PositiveBigIntegerField()
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()
    block_hash = models.CharField(max_length=66)
    block_time = models.DateTimeField()
    token_address = models.CharField(max_length=42)
    token_decimals = models.PositiveSmallIntegerField()
    from_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)
    amount_units = models.DecimalField(**UINT256)
    confirmations = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    # Rechecked until final: then a reorganisation can no longer take it back.
    is_final = models.BooleanField(default=False)
    next_check_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    attribution = models.CharField(
        max_length=10, choices=Attribution.choices, blank=True, default=Attribution.NONE
    )
    attribution_note = models.TextField(blank=True)
    attributed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    attributed_at = models.DateTimeField(null=True, blank=True)
    # Mined after its invoice's deadline: it is refunded, never counted.
    is_late = models.BooleanField(default=False)
    # Posted to the ledger (wallet -> escrow or unmatched) once confirmed.
    is_booked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaymentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A log pays one invoice, once, however many buyers submit its hash at once.
            models.UniqueConstraint(
                fields=["chain_id", "tx_hash", "log_index"], name="payment_log_once"
            ),
        ]
        indexes = [
            # Rechecks of payments that are not final yet.
            models.Index(
                fields=["next_check_at"],
                condition=models.Q(is_final=False),
                name="payment_recheck",
            ),
            models.Index(fields=["tx_hash"], name="payment_tx_hash"),
            # Money in today and this week: the operator's home and the payment list's dates.
            models.Index(fields=["block_time"], name="payment_block_time"),
        ]

    def __str__(self) -> str:
        return f"{self.tx_hash[:10]}…#{self.log_index} ({self.get_status_display()})"

    @property
    def amount(self) -> Decimal:
        return from_units(self.amount_units, self.token_decimals)

    @property
    def is_unmatched(self) -> bool:
        return self.invoice_id is None


class Submission(models.Model):
    """A transaction hash a buyer submitted for an invoice, and what became of it.

    A hash is public: submitting one proves nothing, so a submission only asks Vendo to look;
    attribution decides whose money a transfer is.
    """

    class Status(models.TextChoices):
        # The chain does not know the transaction yet; it is checked again, less and less often.
        WAITING = "waiting", "Not on chain yet"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        # No longer looked for: the invoice stopped being open.
        RETIRED = "retired", "No longer checked"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="submissions")
    tx_hash = models.CharField(max_length=66)
    signature = models.TextField(blank=True)  # a contract wallet's may run to kilobytes
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    # A stable code for machines (e.g. "signature_required") beside the reason for people.
    code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    checks = models.PositiveIntegerField(default=0)
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "tx_hash"], name="submission_once")
        ]
        indexes = [
            # Rechecks of hashes the chain did not know yet.
            models.Index(
                fields=["next_check_at"],
                condition=models.Q(status="waiting"),
                name="submission_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tx_hash[:10]}… ({self.get_status_display()})"


class ChainCursor(models.Model):
    """The first block the watcher has not read yet, per chain and token, so restarts resume."""

    chain_id = models.PositiveBigIntegerField()
    token_address = models.CharField(max_length=42)
    next_block = models.PositiveBigIntegerField()
    # Blocks per eth_getLogs call: halved when the node refuses a range, grown back after.
    window = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "token_address"], name="cursor_unique")
        ]

    def __str__(self) -> str:
        return f"chain {self.chain_id} {self.token_address[:10]}… from block {self.next_block}"


# ------------------------------------------------------------------------------
# Outgoing transfers
# ------------------------------------------------------------------------------


class OnchainTransfer(models.Model):
    """A transfer Vendo sends from the platform's wallet: a payout or a refund, exactly once.

    The nonce is allocated under a lock and the signed bytes and hash are saved before the
    first broadcast; every retry sends those same bytes, so a crash can never send twice.
    """

    class Kind(models.TextChoices):
        PAYOUT = "payout", "Payout to a provider"
        REFUND = "refund", "Refund to a payer"

    class Status(models.TextChoices):
        # Booked, not signed yet: an operator's replay may still cancel a refund.
        QUEUED = "queued", "Queued"
        SIGNED = "signed", "Signed"
        SENT = "sent", "Sent, confirming"
        CONFIRMED = "confirmed", "Confirmed"
        CANCELLED = "cancelled", "Cancelled"

    class Cause(models.TextChoices):
        PAYOUT = "payout", "Payout of earnings"
        FAILED = "failed", "The job failed"
        EXPIRED = "expired", "The invoice expired part-paid"
        CANCELLED = "cancelled", "The invoice was cancelled"
        LATE = "late", "Paid after the invoice closed"
        EXCESS = "excess", "Paid more than the invoice"
        DISPUTE = "dispute", "Dispute decided for the buyer"
        UNMATCHED = "unmatched", "Matched no invoice"
        METERED = "metered", "Unused deposit"

    OPEN_STATUSES = (Status.QUEUED, Status.SIGNED, Status.SENT)

    kind = models.CharField(max_length=10, choices=Kind.choices)
    cause = models.CharField(max_length=10, choices=Cause.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    chain_id = models.PositiveBigIntegerField()
    token_address = models.CharField(max_length=42)
    token_decimals = models.PositiveSmallIntegerField()
    from_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)
    amount_units = models.DecimalField(**UINT256)
    # What it pays back or out: the invoice and payment refunded, or the agent paid.
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="payouts"
    )
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    raw_tx = models.TextField(blank=True)
    tx_hash = models.CharField(max_length=66, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    confirmations = models.PositiveIntegerField(default=0)
    is_final = models.BooleanField(default=False)
    broadcasts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One nonce, one transaction: the database refuses a second use.
            models.UniqueConstraint(
                fields=["chain_id", "from_address", "nonce"], name="transfer_nonce_once"
            ),
        ]
        indexes = [
            # The sender and the confirmer: transfers still on their way.
            models.Index(fields=["status", "next_attempt_at"], name="transfer_status_next"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.amount} USDC to {self.to_address[:10]}…"

    @property
    def amount(self) -> Decimal:
        return from_units(self.amount_units, self.token_decimals)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class SignerNonce(models.Model):
    """The next nonce of the platform's signer, allocated under a row lock."""

    chain_id = models.PositiveBigIntegerField()
    address = models.CharField(max_length=42)
    next_nonce = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "address"], name="signer_nonce_unique")
        ]

    def __str__(self) -> str:
        return f"{self.address[:10]}… on chain {self.chain_id}: next nonce {self.next_nonce}"


# ------------------------------------------------------------------------------
# The ledger
# ------------------------------------------------------------------------------


class Account(models.TextChoices):
    """The ledger's accounts; most are kept per something (`ref`): an invoice, an agent."""

    # The USDC the recipient address holds. An asset: its balance is positive.
    WALLET = "wallet", "Platform wallet"
    # What Vendo owes: liabilities and revenue, their balances negative (credits).
    ESCROW = "escrow", "Escrow (per invoice)"
    UNMATCHED = "unmatched", "Unmatched transfer (per payment)"
    AGENT_HELD = "agent_held", "Agent earnings held (per agent)"
    AGENT_PAYABLE = "agent_payable", "Agent earnings payable (per agent)"
    REVENUE = "revenue", "Platform revenue"
    REFUND_DUE = "refund_due", "Refund due (per payer address)"
    IN_FLIGHT = "in_flight", "Transfer in flight (per transfer)"


class LedgerTransaction(models.Model):
    """One money movement: two or more entries that sum to zero. Never updated."""

    class Kind(models.TextChoices):
        RECEIVED = "received", "Payment received"
        RECEIVED_UNMATCHED = "received_unmatched", "Unmatched transfer received"
        ATTRIBUTED = "attributed", "Unmatched transfer attributed"
        REVERSED = "reversed", "Payment reversed by a reorg"
        SETTLED = "settled", "Job settled"
        RELEASED = "released", "Dispute window closed"
        REFUND = "refund", "Refund due"
        TRANSFER_BOOKED = "transfer_booked", "Transfer booked"
        TRANSFER_CANCELLED = "transfer_cancelled", "Transfer cancelled"
        TRANSFER_CONFIRMED = "transfer_confirmed", "Transfer confirmed"
        TRANSFER_REVERSED = "transfer_reversed", "Transfer reversed by a reorg"
        DISPUTE_UPHELD = "dispute_upheld", "Dispute resolved for the provider"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    memo = models.CharField(max_length=300, blank=True)
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    transfer = models.ForeignKey(
        OnchainTransfer, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class LedgerEntry(models.Model):
    """One side of a movement, in token base units: debits positive, credits negative.

    Append-only: on PostgreSQL a trigger refuses UPDATE and DELETE, and a deferred constraint
    trigger refuses, at commit, a transaction whose entries do not sum to zero.
    """

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.CharField(max_length=20, choices=Account.choices)
    # The invoice id, payment id, agent id, payer address or transfer id the account is for.
    ref = models.CharField(max_length=64, blank=True)
    amount_units = models.DecimalField(max_digits=78, decimal_places=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Balances: one account, or one kind of account per ref.
            models.Index(fields=["account", "ref"], name="ledger_account_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.account}:{self.ref} {self.amount_units:+}"


class LedgerCheck(models.Model):
    """One run of the three rules of the books against the chain (beat runs one every
    LEDGER_CHECK_INTERVAL): the operators' home shows the last, and a broken one alerts."""

    checked_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField("matches the chain")
    problems = models.JSONField(default=list, blank=True)
    block = models.PositiveBigIntegerField(null=True, blank=True)
    # The recipient's token balance at `block`, and what the books say it should be.
    chain_units = models.DecimalField(
        "on chain (base units)", max_digits=78, decimal_places=0, null=True, blank=True
    )
    expected_units = models.DecimalField(
        "the books say (base units)", max_digits=78, decimal_places=0, null=True, blank=True
    )

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"Ledger check #{self.pk}: {'holds' if self.ok else 'broken'}"
