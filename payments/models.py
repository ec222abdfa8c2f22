from decimal import Decimal

from django.db import models

from jobs.models import Job
from payments.money import from_units

# Transfer values are uint256: wider than any integer column, so they are NUMERIC(78, 0).
UINT256 = {"max_digits": 78, "decimal_places": 0}


class InvoiceQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=Invoice.OPEN_STATUSES)

    def past_expiry(self, *, now):
        return self.open().filter(expires_at__lt=now)


class Invoice(models.Model):
    class Status(models.TextChoices):
        # Waiting for a transfer; an underpaid invoice stays open for the rest.
        OPEN = "open", "Awaiting payment"
        # Transfers cover the amount; waiting for confirmations.
        PROCESSING = "processing", "Payment seen, confirming"
        PAID = "paid", "Paid"
        EXPIRED = "expired", "Expired"
        # Money arrived after expiry: recorded for an operator, never lost.
        PAID_LATE = "paid_late", "Paid after expiry"

    OPEN_STATUSES = (Status.OPEN, Status.PROCESSING)

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="invoice")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    chain_id = models.PositiveBigIntegerField()
    token_address = models.CharField(max_length=42)
    token_decimals = models.PositiveSmallIntegerField()
    recipient = models.CharField(max_length=42)
    # The quoted price in base units; amount_units adds the unique tail.
    price_units = models.PositiveBigIntegerField()
    tail_units = models.PositiveIntegerField()
    amount_units = models.PositiveBigIntegerField()
    # Confirmed transfers, and transfers seen but not yet confirmed enough.
    paid_units = models.DecimalField(default=0, **UINT256)
    pending_units = models.DecimalField(default=0, **UINT256)
    excess_units = models.DecimalField(default=0, **UINT256)
    expires_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A transfer's value alone must identify its open invoice.
            models.UniqueConstraint(
                fields=["chain_id", "token_address", "recipient", "amount_units"],
                condition=models.Q(status__in=["open", "processing"]),
                name="invoice_open_amount_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(amount_units=models.F("price_units") + models.F("tail_units")),
                name="invoice_amount_is_price_plus_tail",
            ),
        ]
        indexes = [
            # Expiry sweeps and the watcher's match by amount.
            models.Index(fields=["status", "expires_at"], name="invoice_status_expires"),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.pk} ({self.amount} USDC, {self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def due_units(self) -> int:
        return max(self.amount_units - int(self.paid_units) - int(self.pending_units), 0)

    @property
    def amount(self) -> Decimal:
        return from_units(self.amount_units, self.token_decimals)

    @property
    def paid(self) -> Decimal:
        return from_units(self.paid_units, self.token_decimals)

    @property
    def due(self) -> Decimal:
        return from_units(self.due_units, self.token_decimals)

    @property
    def excess(self) -> Decimal:
        return from_units(self.excess_units, self.token_decimals)

    @property
    def payment_uri(self) -> str:
        """Return the EIP-681 URI for transferring the amount due."""
        return (
            f"ethereum:{self.token_address}@{self.chain_id}/transfer"
            f"?address={self.recipient}&uint256={self.due_units or self.amount_units}"
        )


class Payment(models.Model):
    """One ERC-20 Transfer log towards an invoice, or a submitted hash that was rejected."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for confirmations"
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        SUBMITTED = "submitted", "Hash submitted by the buyer"
        WATCHER = "watcher", "Found by the chain watcher"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="payments")
    source = models.CharField(max_length=10, choices=Source.choices)
    chain_id = models.PositiveBigIntegerField()
    tx_hash = models.CharField(max_length=66)
    # Null for a submission rejected before any log was read.
    log_index = models.PositiveIntegerField(null=True, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    from_address = models.CharField(max_length=42, blank=True)
    to_address = models.CharField(max_length=42, blank=True)
    amount_units = models.DecimalField(null=True, blank=True, **UINT256)
    confirmations = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A log pays one invoice, once, however many buyers submit its hash at once.
            models.UniqueConstraint(
                fields=["chain_id", "tx_hash", "log_index"],
                condition=~models.Q(status="rejected"),
                name="payment_log_used_once",
            ),
        ]
        indexes = [
            # Rechecks of payments waiting for confirmations.
            models.Index(fields=["status", "block_number"], name="payment_status_block"),
        ]

    def __str__(self) -> str:
        where = f"#{self.log_index}" if self.log_index is not None else ""
        return f"{self.tx_hash[:10]}…{where} ({self.get_status_display()})"

    @property
    def amount(self) -> Decimal | None:
        if self.amount_units is None:
            return None
        return from_units(self.amount_units, self.invoice.token_decimals)


class ChainCursor(models.Model):
    """The first block the watcher has not read yet, per chain and token, so restarts resume."""

    chain_id = models.PositiveBigIntegerField()
    token_address = models.CharField(max_length=42)
    next_block = models.PositiveBigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "token_address"], name="cursor_unique")
        ]

    def __str__(self) -> str:
        return f"chain {self.chain_id} {self.token_address[:10]}… from block {self.next_block}"
