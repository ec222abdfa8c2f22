"""Running a paid job: claim it, stream the model's answer, record the result exactly once.

No database transaction stays open across the model call: the claim commits first, partial
saves are single updates, and the result is written in its own atomic block, conditional on
the claim still being ours. A redelivered message, a reaped job or a replay therefore never
records a second result.
"""

import logging
import random
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import ai
from jobs.ai.base import GenerationError, Request, RetryableGenerationError
from jobs.models import DeadLetter, Job, JobEvent
from jobs.output import InvalidOutput, parse_output, system_prompt
from jobs.services import job_event, job_transition
from jobs.settlement import job_refund_failed, job_settle
from payments.services.invoices import invoice_lock, invoice_start_clock

logger = logging.getLogger(__name__)
TASK_NAME = "jobs.run_generation"
RETRY_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Retry:
    """The task should run again after `countdown` seconds."""

    countdown: float


class LostClaim(Exception):
    """Another worker holds the job now (this one was presumed dead); stop quietly."""


def job_claim(*, job_id: int) -> tuple[Job, uuid.UUID] | None:
    """Take the job for this worker with a conditional update and a lease; None if not ours."""
    now = timezone.now()
    job = Job.objects.select_related("skill").filter(pk=job_id).first()
    if job is None or not job.is_claimable(now):
        return None
    # A running job with a claim but no live lease was abandoned: its worker died. Only first
    # deliveries and such recoveries count, so retries never look like a poisoned message.
    abandoned = job.status == Job.Status.IN_PROGRESS and job.claim_token is not None
    fresh = job.status != Job.Status.IN_PROGRESS
    changes = {
        "status": Job.Status.IN_PROGRESS,
        "claim_token": uuid.uuid4(),
        "lease_expires_at": now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        "deliveries": job.deliveries + (1 if fresh or abandoned else 0),
        "started_at": job.started_at or now,
        "updated_at": now,
    }
    if changes["deliveries"] <= settings.GENERATION_MAX_DELIVERIES:
        changes["attempts"] = job.attempts + 1  # this claim makes one model call
    claimed = Job.objects.filter(
        pk=job.pk, status=job.status, claim_token=job.claim_token, deliveries=job.deliveries
    ).update(**changes)
    if not claimed:
        return None
    for name, value in changes.items():
        setattr(job, name, value)
    if fresh:
        job_event(job=job, kind=JobEvent.Kind.PROCESSING, message="A worker started the job.")
    elif abandoned:
        job_event(
            job=job,
            kind=JobEvent.Kind.PROCESSING,
            message=f"Resumed after its worker stopped (delivery {job.deliveries}).",
        )
    return job, changes["claim_token"]


def job_generate(*, job_id: int, task_id: str = "") -> Retry | None:
    """Run the job once; return Retry when a retryable error leaves attempts to spend."""
    claim = job_claim(job_id=job_id)
    if claim is None:
        return None
    job, token = claim
    if job.deliveries > settings.GENERATION_MAX_DELIVERIES:
        _fail(job, token, f"The job stopped its worker {job.deliveries - 1} times.", "", task_id)
        return None
    progress = _Progress(job, token)
    try:
        result = ai.get_backend().generate(
            Request(
                model=job.skill.model,
                system=system_prompt(job.skill),
                prompt=job.prompt,
                max_tokens=job.skill.max_output_tokens,
            ),
            progress,
        )
        output = parse_output(job.skill, result.text)
    except LostClaim:
        return None
    except SoftTimeLimitExceeded:
        return _retry_or_fail(job, token, "The model took too long to answer.", task_id)
    except RetryableGenerationError as error:
        return _retry_or_fail(job, token, error.message, task_id)
    except InvalidOutput as error:
        return _retry_or_fail(job, token, error.message, task_id)
    except GenerationError as error:
        _fail(job, token, error.message, traceback.format_exc(), task_id)
        return None
    _complete(job, token, output, result.input_tokens, result.output_tokens)
    return None


class _Progress:
    """Save partial output and renew the lease as text streams in, at most twice a second."""

    def __init__(self, job: Job, token: uuid.UUID) -> None:
        self.job, self.token = job, token
        self.saved_at = 0.0
        self.started = False
        # Celery's thread pool enforces no time limits, and a trickling stream never trips the
        # read timeout: this deadline bounds the whole call.
        self.deadline = time.monotonic() + settings.GENERATION_TIMEOUT

    def __call__(self, text: str, input_tokens: int, output_tokens: int) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise RetryableGenerationError("The model took too long to answer.")
        if now - self.saved_at < settings.PARTIAL_SAVE_INTERVAL:
            return
        self.saved_at = now
        saved = Job.objects.filter(pk=self.job.pk, claim_token=self.token).update(
            partial_text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        )
        if not saved:
            raise LostClaim()
        if not self.started:
            self.started = True
            job_event(job=self.job, kind=JobEvent.Kind.PARTIAL, message="Output is streaming in.")


def _complete(job: Job, token: uuid.UUID, output, input_tokens: int, output_tokens: int) -> None:
    with transaction.atomic():
        # Lock the invoice before deciding: a payment landing now waits for this decision and
        # then finds the job delivered, so it completes it; none is stranded in between.
        invoice = invoice_lock(invoice_id=job.invoice_id)
        job.invoice = invoice
        if not invoice.is_paid:
            # Held until paid; the invoice runs from delivery: the buyer pays for a result.
            invoice_start_clock(invoice=invoice)
        job_transition(
            job=job,
            to=Job.Status.COMPLETED if invoice.is_paid else Job.Status.DELIVERED,
            guard={"claim_token": token},
            message=f"{output_tokens} output tokens.",
            output_text=output.text,
            output_json=output.data,
            partial_text="",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            error="",
            claim_token=None,
            lease_expires_at=None,
        )
        if invoice.is_paid:
            job_settle(job=job)


def _retry_or_fail(job: Job, token: uuid.UUID, message: str, task_id: str) -> Retry | None:
    if job.attempts > settings.GENERATION_MAX_RETRIES:
        _fail(
            job,
            token,
            f"{message} Gave up after {job.attempts} attempts.",
            traceback.format_exc(),
            task_id,
        )
        return None
    base = settings.GENERATION_RETRY_BASE * 2 ** (job.attempts - 1)
    countdown = min(base, RETRY_MAX_SECONDS) * random.uniform(0.5, 1.0)  # jitter
    # Release the claim; the lease keeps the reaper away until the retry is due.
    with transaction.atomic():
        released = Job.objects.filter(pk=job.pk, claim_token=token).update(
            claim_token=None,
            error=message,
            lease_expires_at=timezone.now()
            + timedelta(seconds=countdown + settings.JOB_LEASE_SECONDS),
        )
        if released:
            job_event(
                job=job,
                kind=JobEvent.Kind.RETRYING,
                message=f"{message} Attempt {job.attempts + 1} in {countdown:.1f} s.",
            )
    return Retry(countdown=countdown) if released else None


def _fail(job: Job, token: uuid.UUID, message: str, trace: str, task_id: str) -> None:
    """Fail the job for good: refunds of what was paid, a DeadLetter row, a dead_letter message."""
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=job.invoice_id)
        job.invoice = invoice
        job_transition(
            job=job,
            to=Job.Status.FAILED,
            guard={"claim_token": token},
            message=message,
            error=message,
            partial_text="",
            claim_token=None,
            lease_expires_at=None,
        )
        job_refund_failed(job=job, invoice=invoice)
        dead_letter = DeadLetter.objects.create(
            job=job,
            task_name=TASK_NAME,
            task_id=task_id,
            args=[job.pk],
            exception=message,
            traceback=trace if trace.strip() != "NoneType: None" else "",
            attempts=job.attempts,
        )
        transaction.on_commit(lambda: _publish_dead_letter(dead_letter), robust=True)
    logger.warning("Job %s failed: %s", job.public_id, message)


def _publish_dead_letter(dead_letter: DeadLetter) -> None:
    from jobs.tasks import dead_letter as dead_letter_task

    dead_letter_task.apply_async(
        kwargs={
            "dead_letter_id": dead_letter.pk,
            "task_name": dead_letter.task_name,
            "args": dead_letter.args,
            "exception": dead_letter.exception,
        },
        queue="dead_letter",
    )


def jobs_reap() -> int:
    """Queue again the jobs whose message was lost or whose worker died; release held
    results whose invoice was paid meanwhile."""
    from jobs.services import enqueue_generation, job_mark_paid

    now = timezone.now()
    stuck = Job.objects.stuck_unstarted(before=now - timedelta(seconds=settings.REQUEUE_PAID_AFTER))
    abandoned = Job.objects.lease_expired(now=now)
    job_ids = list(stuck.values_list("pk", flat=True)) + list(
        abandoned.values_list("pk", flat=True)
    )
    for job_id in job_ids:
        enqueue_generation(job_id)
    if job_ids:
        logger.info("Reaper queued %d job(s) again: %s", len(job_ids), job_ids)
    for job in Job.objects.delivered_and_paid().select_related("skill__agent"):
        with transaction.atomic():
            job.invoice = invoice_lock(invoice_id=job.invoice_id)
            job.refresh_from_db(fields=["status"])
            if job.invoice.is_paid:
                job_mark_paid(job=job)
    return len(job_ids)
