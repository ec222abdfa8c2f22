"""Writes to jobs: ordering, the one status-changing service, and the timeline."""

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs.buyers import browser_hash
from jobs.errors import InvalidTransition, OrderError
from jobs.models import TRANSITIONS, DeadLetter, Job, JobEvent
from marketplace.models import PaymentMode, Skill

logger = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 20_000

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
) -> Job:
    """Order `skill` on `prompt`: create the job and its invoice in one transaction.

    `browser_token` is the ordering browser's own token (jobs.buyers), never a session key.
    """
    from payments.services import invoice_create

    prompt = prompt.strip()
    if not prompt:
        raise OrderError("Write what you want the agent to do.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise OrderError(f"Keep the input under {MAX_PROMPT_CHARS:,} characters.")
    if not (skill.is_active and skill.agent.is_active):
        raise OrderError("This skill is not available right now.")
    try:
        # The rules the admin enforces, again: a row written around them (a fixture, a model
        # withdrawn from ALLOWED_MODELS since) must not become a free proxy to the AI key.
        skill.clean()
    except ValidationError as error:
        logger.warning("Skill %s refused an order: %s", skill.pk, error.message_dict)
        raise OrderError("This skill is not available right now.") from None
    price = skill.quote(prompt)
    with transaction.atomic():
        job = Job.objects.create(
            skill=skill,
            buyer=buyer if buyer and buyer.is_authenticated else None,
            buyer_browser=browser_hash(browser_token),
            prompt=prompt,
            price=price,
            payment_mode=skill.effective_payment_mode,
        )
        invoice = invoice_create(job=job, price=price)
        job_event(
            job=job,
            kind=JobEvent.Kind.PAYMENT_REQUIRED,
            message=f"Pay {invoice.amount} USDC to run this job.",
            data={"amount_units": invoice.amount_units},
        )
        if job.payment_mode == PaymentMode.ON_COMPLETION:
            transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


def job_mark_paid(*, job: Job) -> Job:
    """Record that the job's invoice is paid, and queue the run (or complete a delivery)."""
    if job.status == S.DELIVERED:
        return job_transition(job=job, to=S.COMPLETED, message="Paid; the result is released.")
    if job.status != S.PENDING:
        return job
    job_transition(job=job, to=S.PAID)
    transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


def job_expire(*, job: Job) -> Job:
    """Expire a job whose invoice went unpaid."""
    return job_transition(job=job, to=S.EXPIRED, message="The invoice expired unpaid.")


def job_retry(*, job: Job) -> Job:
    """Run a failed job again (an operator's retry or a dead letter's replay)."""
    job_transition(
        job=job,
        to=S.PAID,
        event=JobEvent.Kind.RETRYING,
        message="Queued again by an operator.",
        attempts=0,
        deliveries=0,
        error="",
        error_detail="",
    )
    transaction.on_commit(lambda: enqueue_generation(job.pk), robust=True)
    return job


def job_refund(*, job: Job) -> Job:
    """Record that the buyer of a failed or disputed job was refunded."""
    return job_transition(job=job, to=S.REFUNDED, message=f"{job.price} USDC refunded.")


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


def enqueue_generation(job_id: int) -> None:
    """Queue the generation task. Call after commit, so the worker sees the job.

    Callers register it with on_commit(robust=True): when the broker is down the paid job is
    already saved, the error is logged, and the reaper queues the job again later.
    """
    from jobs.tasks import run_generation

    run_generation.delay(job_id)
