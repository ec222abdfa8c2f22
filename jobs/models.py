import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse

from marketplace.models import PaymentMode, Skill
from payments.models import Invoice


class JobQuerySet(models.QuerySet):
    def public(self):
        """Jobs buyers ordered: every job but a provider's test runs."""
        return self.filter(is_test=False)

    def test_runs_of(self, owner, *, since):
        """Test runs of `owner`'s skills started since `since` (the daily limit)."""
        return self.filter(is_test=True, skill__agent__owner=owner, created_at__gte=since)

    def stuck_unstarted(self, *, before):
        """Jobs whose message may be lost: paid, or ordered to pay after delivery, before
        `before`, and never started."""
        return self.filter(
            models.Q(status=Job.Status.PAID, paid_at__lt=before)
            | models.Q(
                status=Job.Status.PENDING,
                payment_mode=PaymentMode.ON_COMPLETION,
                started_at__isnull=True,
                created_at__lt=before,
            )
        )

    def delivered_and_paid(self):
        """Held results whose invoice is paid: a payment that raced the delivery."""
        return self.filter(status=Job.Status.DELIVERED, invoice__status=Invoice.Status.PAID)

    def lease_expired(self, *, now):
        """Running jobs whose worker stopped renewing its lease (it died)."""
        return self.filter(status=Job.Status.IN_PROGRESS, lease_expires_at__lt=now)

    def held(self):
        """Jobs waiting for the platform's AI key to work again."""
        return self.filter(status=Job.Status.HELD)

    def not_requeued_since(self, when):
        """Jobs the reaper (or a resume) has not queued again since `when`."""
        return self.filter(models.Q(requeued_at__isnull=True) | models.Q(requeued_at__lt=when))


class Job(models.Model):
    class Status(models.TextChoices):
        # Waiting for its invoice to be paid.
        PENDING = "pending", "Awaiting payment"
        # Paid; queued for a worker.
        PAID = "paid", "Paid, queued"
        # A worker is generating the result.
        IN_PROGRESS = "in_progress", "Running"
        # The AI provider refuses the platform's key: the job waits and resumes by itself.
        HELD = "held", "Waiting for the platform"
        # Pay-after-delivery: the result is ready and held until the invoice is paid.
        DELIVERED = "delivered", "Delivered, awaiting payment"
        COMPLETED = "completed", "Completed"
        # The run failed for good; whatever was paid goes back to the payers.
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired unpaid"
        DISPUTED = "disputed", "Disputed"
        REFUNDED = "refunded", "Refunded"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="jobs")
    # Its invoice's reference is the job's public id; payments knows nothing else of the job.
    # A test run has none: it is unbilled.
    invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="job"
    )
    # A provider's test run of its skill: unbilled, never refunded, seen only in the admin by
    # its provider and operators (its public page is a 404).
    is_test = models.BooleanField("test run", default=False)
    # The skill's fingerprint when the test run started: the version it tested.
    skill_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    # The ordering browser, as a keyed hash of a random token of its own (jobs.buyers), never
    # its session key; it lists the job under "My jobs". The job's UUID link is the access.
    buyer_browser = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    # A keyed hash of the client's network address: open orders are counted per client.
    buyer_address = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    prompt = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    payment_mode = models.CharField(max_length=20, choices=PaymentMode.for_jobs())
    price = models.DecimalField("quoted price (USDC)", max_digits=18, decimal_places=6)

    output_text = models.TextField(blank=True)
    output_json = models.JSONField(null=True, blank=True)
    # What has streamed so far; shown live, never taken as the result.
    partial_text = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Model calls made.")
    deliveries = models.PositiveIntegerField(default=0, help_text="Times a worker claimed it.")
    # What the buyer reads: a fixed message per outcome (jobs.outcomes), never outside text.
    error = models.TextField(blank=True)
    # What happened, for the provider and operators: the AI provider's words, request ids,
    # schema errors. Never shown on the job page or in status.json.
    error_detail = models.TextField(blank=True)

    # The worker holding the job renews its lease while it streams.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When the reaper (or a resume) last queued the job again: at most once per
    # REQUEUE_PAID_AFTER, so an outage never piles up duplicate messages.
    requeued_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The reaper: jobs in a status whose clock ran out.
            models.Index(fields=["status", "paid_at"], name="job_status_paid_at"),
            models.Index(fields=["status", "lease_expires_at"], name="job_status_lease"),
            # Providers' homes: a skill's jobs today and over the week, the latest first.
            models.Index(fields=["skill", "created_at"], name="job_skill_created"),
        ]
        constraints = [
            # Every order has its invoice; only a test run has none.
            models.CheckConstraint(
                condition=models.Q(is_test=True, invoice__isnull=True)
                | models.Q(is_test=False, invoice__isnull=False),
                name="job_invoice_unless_test",
            )
        ]
        # "My jobs" reads by buyer_browser (db_index) and by buyer (the foreign key's index).

    def __str__(self) -> str:
        return f"Job {str(self.public_id)[:8]} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("jobs:detail", kwargs={"public_id": self.public_id})

    @property
    def is_running(self) -> bool:
        return self.status in {self.Status.PAID, self.Status.IN_PROGRESS, self.Status.HELD}

    def is_claimable(self, now) -> bool:
        """Whether a worker may take the job: paid, pay-after-delivery, retrying, abandoned,
        or resumed after the platform's key works again."""
        if self.status in {self.Status.PAID, self.Status.HELD}:
            return True
        if self.status == self.Status.PENDING:
            return self.payment_mode == PaymentMode.ON_COMPLETION
        if self.status == self.Status.IN_PROGRESS:
            return self.claim_token is None or self.lease_expires_at < now
        return False

    @property
    def has_result(self) -> bool:
        """Whether the job holds a finished result (its buyer reads it only once paid)."""
        return self.status in {
            self.Status.DELIVERED,
            self.Status.COMPLETED,
            self.Status.DISPUTED,
            self.Status.REFUNDED,
        }

    @property
    def dispute_closes_at(self):
        if self.completed_at is None:
            return None
        return self.completed_at + timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)

    def can_dispute(self, now) -> bool:
        """Whether the buyer may still open a dispute: completed, within the window."""
        return self.status == self.Status.COMPLETED and now < self.dispute_closes_at


S = Job.Status
# Every move a job may make. job_transition() refuses anything else.
TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.PAID, S.EXPIRED, S.IN_PROGRESS},  # in_progress: pay-after-delivery
    S.PAID: {S.IN_PROGRESS, S.FAILED},
    S.IN_PROGRESS: {S.COMPLETED, S.DELIVERED, S.FAILED, S.HELD},
    S.HELD: {S.IN_PROGRESS},  # a worker claims it once the platform's key works
    S.DELIVERED: {S.COMPLETED, S.EXPIRED},
    S.COMPLETED: {S.DISPUTED, S.REFUNDED},  # refunded: by an operator
    S.FAILED: {S.PAID, S.PENDING, S.REFUNDED},  # paid, pending: replayed by an operator
    S.DISPUTED: {S.REFUNDED, S.COMPLETED},
    S.EXPIRED: set(),
    S.REFUNDED: set(),
}
FINAL = {S.EXPIRED, S.REFUNDED}


class JobEvent(models.Model):
    """One entry in a job's timeline, like NIP-90 job feedback."""

    class Kind(models.TextChoices):
        CREATED = "created", "Ordered"
        TEST_RUN = "test-run", "Test run started"
        PAYMENT_REQUIRED = "payment-required", "Payment required"
        PAYMENT_SEEN = "payment-seen", "Payment seen"
        PAYMENT_REVERTED = "payment-reverted", "Payment reverted"
        REFUND = "refund", "Refund"
        PAID = "paid", "Paid"
        PROCESSING = "processing", "Processing"
        PARTIAL = "partial", "Partial output"
        RETRYING = "retrying", "Retrying"
        HELD = "held", "Waiting for the platform"
        DELIVERED = "delivered", "Delivered"
        SUCCESS = "success", "Completed"
        ERROR = "error", "Error"
        EXPIRED = "expired", "Expired"
        DISPUTED = "disputed", "Disputed"
        REFUNDED = "refunded", "Refunded"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField("job status after", max_length=20, choices=Job.Status.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The job page's timeline.
            models.Index(fields=["job", "created_at"], name="jobevent_job_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class DeadLetter(models.Model):
    """A task that exhausted its retries, kept for an operator to read and replay."""

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, null=True, blank=True, related_name="dead_letters"
    )
    task_name = models.CharField(max_length=200)
    task_id = models.CharField(max_length=100, blank=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.args} ({self.created_at:%Y-%m-%d %H:%M})"


class Dispute(models.Model):
    """A buyer's dispute of a completed job, and an operator's decision on it."""

    class Resolution(models.TextChoices):
        REFUND_FULL = "refund_full", "Refunded in full"
        REFUND_PART = "refund_part", "Refunded in part"
        UPHELD = "upheld", "Upheld: the provider keeps its share"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="dispute")
    reason = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    refund_units = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    note = models.TextField(blank=True, help_text="Why, for the buyer and the provider.")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"Dispute of {self.job}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
