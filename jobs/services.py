"""Writes to jobs: ordering, the one status-changing service, the timeline, and what an
invoice's news means for its job."""

import logging
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs import selectors, settlement
from jobs.buyers import address_hash, browser_hash
from jobs.errors import InvalidTransition, OrderError, SkillTestRefused
from jobs.models import TRANSITIONS, DeadLetter, Dispute, Job, JobEvent
from marketplace.models import PaymentMode, Skill
from marketplace.money import format_token
from payments.services.invoices import invoice_create, invoice_lock
from payments.signals import InvoiceEvent

logger = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 20_000
MAX_DISPUTE_CHARS = 4_000
# Refunds are capped at what the invoice took in: "everything".
FULL_REFUND = 2**256

S = Job.Status
# The time field each status stamps, and the timeline entry it writes.
STAMPS = {
    S.PAID: "paid_at",
    S.IN_PROGRESS: "started_at",
    S.HELD: "held_at",
    S.DELIVERED: "delivered_at",
    S.COMPLETED: "completed_at",
    S.FAILED: "failed_at",
    S.EXPIRED: "expired_at",
    S.DISPUTED: "disputed_at",
    S.REFUNDED: "refunded_at",
}
EVENTS = {
    S.PENDING: JobEvent.Kind.RETRYING,
    S.PAID: JobEvent.Kind.PAID,
    S.IN_PROGRESS: JobEvent.Kind.PROCESSING,
    S.HELD: JobEvent.Kind.HELD,
    S.DELIVERED: JobEvent.Kind.DELIVERED,
    S.COMPLETED: JobEvent.Kind.SUCCESS,
    S.FAILED: JobEvent.Kind.ERROR,
    S.EXPIRED: JobEvent.Kind.EXPIRED,
    S.DISPUTED: JobEvent.Kind.DISPUTED,
    S.REFUNDED: JobEvent.Kind.REFUNDED,
}


def job_event(*, job: Job, kind: str, message: str = "", data: dict | None = None) -> JobEvent:
    """Add an entry to the job's timeline."""
    return JobEvent.objects.create(
        job=job, kind=kind, status=job.status, message=message, data=data or {}
    )


def job_transition(
    *,
    job: Job,
    to: str,
    message: str = "",
    event: str | None = None,
    guard: dict | None = None,
    **fields,
) -> Job:
    """Move `job` to status `to`, stamp the time and write the timeline entry.

    Refuse a move the transition table does not allow; do nothing for the same status. The
    update is conditional on the status read (and on `guard`, e.g. the worker's claim), so two
    racing callers cannot both move the job.
    """
    if job.status == to:
        return job
    if to not in TRANSITIONS[job.status]:
        raise InvalidTransition(
            f"A job that is {job.get_status_display().lower()} cannot become "
            f"{Job.Status(to).label.lower()}.",
        )
    now = timezone.now()
    fields["status"] = to
    if to in STAMPS:
        fields[STAMPS[to]] = now
    moved = Job.objects.filter(pk=job.pk, status=job.status, **(guard or {})).update(
        updated_at=now, **fields
    )
    if not moved:
        job.refresh_from_db()
        raise InvalidTransition(f"The job changed meanwhile; it is now {job.get_status_display()}.")
    for name, value in fields.items():
        setattr(job, name, value)
    job.updated_at = now
    job_event(job=job, kind=event or EVENTS[to], message=message)
    return job


def job_create(
    *,
    skill: Skill,
    prompt: str,
    buyer: AbstractBaseUser | None = None,
    browser_token: str = "",
    client_address: str = "",
    payment_mode: str = "",
) -> Job:
    """Order `skill` on `prompt`: create the job and its invoice in one transaction.

    `browser_token` is the ordering browser's own token (jobs.buyers), never a session key;
    `payment_mode` is the buyer's pick where the skill lets the buyer choose. A client (its
    browser, or its network address) may hold at most MAX_OPEN_ORDERS_PER_CLIENT unpaid
    orders: each holds an invoice amount, and abandoned ones must not crowd out buyers.
    """
    prompt = prompt.strip()
    if not prompt:
        raise OrderError("Write what you want the agent to do.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise OrderError(f"Keep the input under {MAX_PROMPT_CHARS:,} characters.")
    if not (skill.is_live and skill.is_active and skill.agent.is_active):
        raise OrderError("This skill is not available right now.")
    try:
        # The rules the admin enforces, again: a row written around them (a fixture, a model
        # withdrawn from ALLOWED_MODELS since) must not become a free proxy to the AI key.
        skill.clean()
    except ValidationError as error:
        logger.warning("Skill %s refused an order: %s", skill.pk, error.message_dict)
        raise OrderError("This skill is not available right now.") from None
    browser, address = browser_hash(browser_token), address_hash(client_address)
    open_orders = selectors.open_orders(browser=browser, address=address)
    if len(open_orders) >= settings.MAX_OPEN_ORDERS_PER_CLIENT:
        names = "; ".join(f"{job.skill.name} ({str(job.public_id)[:8]})" for job in open_orders)
        raise OrderError(
            f"You have {len(open_orders)} unpaid orders, the most one client may hold: {names}. "
            "Pay one of them, or let them expire, then order again.",
            code="too_many_open_orders",
        )
    mode = skill.effective_payment_mode
    if mode == PaymentMode.BUYER_CHOICE:
        if payment_mode not in (PaymentMode.UPFRONT, PaymentMode.ON_COMPLETION):
            raise OrderError(
                "Choose when to pay: before the run, or after delivery.", code="payment_mode"
            )
        mode = payment_mode
    price = skill.quote(prompt)
    public_id = uuid.uuid4()
    with transaction.atomic():
        # A pay-after-delivery invoice has no deadline until the result exists.
        invoice = invoice_create(
            reference=str(public_id), price=price, start_clock=mode == PaymentMode.UPFRONT
        )
        job = Job.objects.create(
            public_id=public_id,
            skill=skill,
            invoice=invoice,
            buyer=buyer if buyer and buyer.is_authenticated else None,
            buyer_browser=browser,
            buyer_address=address,
            prompt=prompt,
            price=price,
            payment_mode=mode,
        )
        job_event(
            job=job,
            kind=JobEvent.Kind.PAYMENT_REQUIRED,
            message=f"Pay {format_token(invoice.amount_units, invoice.token_decimals)} USDC "
            + ("to run this job." if mode == PaymentMode.UPFRONT else "once the result is ready."),
            data={"amount_units": str(invoice.amount_units)},
        )
        if mode == PaymentMode.ON_COMPLETION:
            transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


# ------------------------------------------------------------------------------
# Test runs: a provider tries its skill before buyers pay for it
# ------------------------------------------------------------------------------


def start_of_day(now: datetime | None = None) -> datetime:
    """Return midnight (in TIME_ZONE, UTC by default) of the day of `now`."""
    now = timezone.localtime(now or timezone.now())
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def job_test_runs_left(*, owner, now: datetime | None = None) -> int:
    """Return how many test runs `owner` may still start today."""
    used = Job.objects.test_runs_of(owner, since=start_of_day(now)).count()
    return max(settings.PROVIDER_TEST_RUNS_PER_DAY - used, 0)


def job_test_run(*, skill: Skill, prompt: str, user: AbstractBaseUser) -> Job:
    """Run `skill` on a sample input through the worker's own path, unbilled: a test run.

    It has no invoice, is never refunded and never settled, and only the skill's provider and
    operators see it (in the admin). Its completion records the version it ran on, which is
    what publishing asks for. The skill's provider may start PROVIDER_TEST_RUNS_PER_DAY a day
    across all its skills (whoever presses the button), so that making many skills never adds
    up to free model calls.
    """
    prompt = prompt.strip()
    if not prompt:
        raise OrderError("Write a sample input for the test run.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise OrderError(f"Keep the sample input under {MAX_PROMPT_CHARS:,} characters.")
    try:
        skill.clean()
    except ValidationError as error:
        fields = ", ".join(sorted(error.message_dict))
        raise SkillTestRefused(
            f"Fix the skill's settings first ({fields}), then test it."
        ) from None
    limit = settings.PROVIDER_TEST_RUNS_PER_DAY
    with transaction.atomic():
        # One provider's test runs are counted one at a time: two presses at once cannot both
        # take the last one.
        owner = get_user_model().objects.select_for_update().get(pk=skill.agent.owner_id)
        if job_test_runs_left(owner=owner) <= 0:
            raise SkillTestRefused(
                f"{owner.get_username()} has used today's {limit} test runs (the limit is per "
                "provider, across all its skills). More tomorrow (UTC).",
                code="test_run_limit",
            )
        now = timezone.now()
        job = Job.objects.create(
            skill=skill,
            invoice=None,
            is_test=True,
            skill_fingerprint=skill.fingerprint,
            prompt=prompt,
            price=skill.quote(prompt),
            payment_mode=PaymentMode.UPFRONT,
            # Queued at once, as a paid job is; paid_at is when it was queued, which is the
            # reaper's clock for a lost message.
            status=S.PAID,
            paid_at=now,
        )
        job_event(
            job=job,
            kind=JobEvent.Kind.TEST_RUN,
            message=f"Started by {user.get_username()}: unbilled, seen only in the admin.",
        )
        transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


# ------------------------------------------------------------------------------
# What an invoice's news means for its job (payments.signals.invoice_event)
# ------------------------------------------------------------------------------


def job_on_invoice_event(*, job: Job, kind: str, message: str, payment=None) -> None:
    """React to the job's invoice; called inside the transaction that changed the invoice."""
    if kind == InvoiceEvent.PAYMENT_SEEN:
        job_event(
            job=job,
            kind=JobEvent.Kind.PAYMENT_SEEN,
            message=message,
            data={"tx_hash": payment.tx_hash, "amount_units": str(payment.amount_units)},
        )
    elif kind == InvoiceEvent.PAID:
        job_mark_paid(job=job)
    elif kind == InvoiceEvent.EXPIRED:
        if job.status in (S.PENDING, S.DELIVERED):
            job_transition(job=job, to=S.EXPIRED, message="The invoice expired unpaid.")
    elif kind == InvoiceEvent.UNPAID:
        settlement.job_payment_taken_back(job=job, message=message)
    elif kind == InvoiceEvent.PAYMENT_REVERTED:
        job_event(job=job, kind=JobEvent.Kind.PAYMENT_REVERTED, message=message)
    elif kind == InvoiceEvent.REFUNDED:
        job_event(job=job, kind=JobEvent.Kind.REFUND, message=message)
    elif kind == InvoiceEvent.PAID_LATE:
        job_event(job=job, kind=JobEvent.Kind.PAYMENT_SEEN, message=message)


def job_mark_paid(*, job: Job) -> Job:
    """The invoice is paid: queue the run, or release a result that was held for payment."""
    if job.status == S.DELIVERED:
        job_transition(job=job, to=S.COMPLETED, message="Paid; the result is released.")
        settlement.job_settle(job=job)
        return job
    if job.status != S.PENDING:
        return job
    job_transition(job=job, to=S.PAID)
    transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


# ------------------------------------------------------------------------------
# Operators: retry and replay
# ------------------------------------------------------------------------------


def job_retry(*, job: Job) -> Job:
    """Run a failed job again (an operator's retry or a dead letter's replay).

    Refunds of it that have not left are taken back; once one has been signed, the money is
    on its way to the buyer and the job cannot run again.
    """
    if job.is_test:
        raise InvalidTransition("A test run is not run again: start a new one from its skill.")
    if job.status != S.FAILED:
        raise InvalidTransition("Only a failed job can run again.")
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=job.invoice_id)
        settlement.job_unrefund(job=job, invoice=invoice)
        job_transition(
            job=job,
            to=S.PAID if invoice.is_paid else S.PENDING,
            event=JobEvent.Kind.RETRYING,
            message="Queued again by an operator.",
            attempts=0,
            deliveries=0,
            error="",
            error_detail="",
        )
        transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


def dead_letter_replay(*, dead_letter: DeadLetter) -> DeadLetter:
    """Replay a dead letter: run its job again."""
    if dead_letter.job is None:
        raise InvalidTransition("This dead letter has no job to run again.")
    with transaction.atomic():
        job_retry(job=dead_letter.job)
        dead_letter.replayed_at = dead_letter.resolved_at = timezone.now()
        dead_letter.save(update_fields=["replayed_at", "resolved_at"])
    return dead_letter


def dead_letters_resolve(*, dead_letters) -> int:
    return dead_letters.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())


# ------------------------------------------------------------------------------
# Disputes
# ------------------------------------------------------------------------------


def dispute_open(*, job: Job, reason: str) -> Dispute:
    """Open the buyer's dispute of a completed job while its window is open."""
    reason = reason.strip()
    if not reason:
        raise OrderError("Say what is wrong with the result.", code="reason_required")
    if len(reason) > MAX_DISPUTE_CHARS:
        raise OrderError(f"Keep the reason under {MAX_DISPUTE_CHARS:,} characters.")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status == S.DISPUTED or Dispute.objects.filter(job=job).exists():
            raise InvalidTransition("This job has been disputed already.", code="already_disputed")
        if not job.can_dispute(timezone.now()):
            raise InvalidTransition(
                "This job can no longer be disputed: disputes are open for completed jobs, "
                "until the window after completion closes.",
                code="dispute_closed",
            )
        job_transition(job=job, to=S.DISPUTED, message=reason[:500])
        return Dispute.objects.create(job=job, reason=reason)


def dispute_resolve(*, dispute: Dispute, refund_units: int, note: str, user) -> Dispute:
    """Decide a dispute: refund `refund_units` (all of it, part, or none: upheld)."""
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().select_related("job").get(pk=dispute.pk)
        if not dispute.is_open:
            raise InvalidTransition("This dispute is already resolved.")
        job = dispute.job
        invoice = invoice_lock(invoice_id=job.invoice_id)
        refunded = settlement.dispute_settle(job=job, invoice=invoice, refund_units=refund_units)
        full = int(invoice.share_units) + int(invoice.fee_units)
        dispute.refund_units = refunded
        dispute.resolution = (
            Dispute.Resolution.UPHELD
            if not refunded
            else Dispute.Resolution.REFUND_FULL
            if refunded >= full
            else Dispute.Resolution.REFUND_PART
        )
        dispute.note, dispute.resolved_by, dispute.resolved_at = note, user, timezone.now()
        dispute.save()
        amount = format_token(refunded, invoice.token_decimals)
        if refunded:
            job_transition(job=job, to=S.REFUNDED, message=f"{amount} USDC refunded. {note}")
        else:
            job_transition(job=job, to=S.COMPLETED, message=f"Dispute closed: upheld. {note}")
    return dispute


def job_refund(*, job: Job, user, note: str = "") -> Job:
    """Refund a completed or disputed job's buyer in full (an operator's decision).

    A failed job needs none of this: what was paid for it goes back by itself.
    """
    note = note or "Refunded in full by an operator."
    if job.is_test:
        raise InvalidTransition("A test run was never billed: there is nothing to refund.")
    if job.status == S.DISPUTED:
        dispute_resolve(dispute=job.dispute, refund_units=FULL_REFUND, note=note, user=user)
        job.refresh_from_db()
        return job
    if job.status != S.COMPLETED:
        raise InvalidTransition(
            "Only a completed or disputed job is refunded by an operator; a failed job's "
            "payment goes back to its payers by itself."
        )
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=job.invoice_id)
        refunded = settlement.dispute_settle(job=job, invoice=invoice, refund_units=FULL_REFUND)
        amount = format_token(refunded, invoice.token_decimals)
        job_transition(job=job, to=S.REFUNDED, message=f"{amount} USDC refunded. {note}")
    return job


def enqueue_generation(job_id: int) -> None:
    """Queue the generation task. Call after commit, so the worker sees the job.

    Callers register it with on_commit(robust=True): when the broker is down the paid job is
    already saved, the error is logged, and the reaper queues the job again later.
    """
    from jobs.tasks import run_generation

    run_generation.delay(job_id)
