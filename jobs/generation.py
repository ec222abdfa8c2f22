"""Running a paid job: claim it, stream the model's answer, record the result exactly once.

No database transaction stays open across the model call: the claim commits first, partial
saves are single updates, and the result is written in its own atomic block, conditional on
the claim still being ours. A redelivered message, a reaped job or a replay therefore never
records a second result.

Every exception around the model call, the checks and the save ends in one classified outcome
(jobs.outcomes): retried with backoff, failed for good, or held until the platform's AI key
works again. None leaves the job claimed for its lease to lapse and the model to be called
again. While the call is open the process's lease keeper (jobs.leases) renews the job's lease,
text or no text, and abandons the call if the claim is lost.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from jobs import ai, outcomes
from jobs.ai.base import (
    GenerationError,
    PlatformUnavailable,
    Request,
    Result,
    RetryableGenerationError,
)
from jobs.errors import InvalidTransition
from jobs.leases import KEEPER, Lease
from jobs.models import DeadLetter, Job, JobEvent
from jobs.outcomes import AnswerTooLong, Kind, Outcome, Refusal, classify, failed_message
from jobs.output import Output, parse_output, system_prompt
from jobs.services import job_event, job_mark_paid, job_transition
from jobs.settlement import job_refund_failed, job_settle
from marketplace.models import OperatorAlert, Skill
from marketplace.services import alert_clear, alert_raise, skill_record_test
from payments.services.invoices import invoice_lock, invoice_start_clock

logger = logging.getLogger(__name__)
TASK_NAME = "jobs.run_generation"
RETRY_MAX_SECONDS = 60.0
# Appended to a Markdown answer that stopped at the skill's output limit.
CUT_NOTE = (
    "\n\n---\n\n*Cut short: this answer reached the skill's limit of {limit:,} output tokens.*\n"
)
# The database's transient troubles: the task retries them (jobs.tasks), the job stays safe.
DATABASE_DOWN = (OperationalError, InterfaceError)


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
    # deliveries and such recoveries count, so retries and resumes after a hold never look
    # like a poisoned message.
    abandoned = job.status == Job.Status.IN_PROGRESS and job.claim_token is not None
    resumed = job.status == Job.Status.HELD
    fresh = job.status not in {Job.Status.IN_PROGRESS, Job.Status.HELD}
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
    elif resumed:
        job_event(
            job=job,
            kind=JobEvent.Kind.PROCESSING,
            message="Resumed: the platform accepts requests again.",
        )
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
        detail = f"The job stopped its worker {job.deliveries - 1} times."
        _fail(job, token, outcomes.FAILED, "", task_id, detail=detail)
        return None
    lease = KEEPER.hold(job_id=job.pk, token=token)
    try:
        return _run(job, token, lease, task_id)
    finally:
        KEEPER.release(lease)


def _run(job: Job, token: uuid.UUID, lease: Lease, task_id: str) -> Retry | None:
    """Make the one model call of this attempt, check the answer, save it; settle any fault."""
    try:
        result = ai.get_backend().generate(
            Request(
                model=job.skill.model,
                system=system_prompt(job.skill),
                prompt=job.prompt,
                max_tokens=job.skill.max_output_tokens,
            ),
            _Progress(job, token, lease),
        )
        output = _answer(job.skill, result)
    except DATABASE_DOWN:
        raise
    except Exception as error:
        if isinstance(error, LostClaim) or lease.lost.is_set():
            return None  # another worker holds the job now
        return _settle(job, token, classify(error), task_id)
    if lease.lost.is_set():
        return None
    try:
        _complete(job, token, output, result.input_tokens, result.output_tokens)
    except InvalidTransition:
        return None  # the claim was lost meanwhile: the result belongs to its new holder
    except DATABASE_DOWN:
        raise
    except Exception as error:
        return _settle(job, token, classify(error), task_id)
    return None


def _answer(skill: Skill, result: Result) -> Output:
    """Check why the model stopped, and what it wrote; return the output to save."""
    text = result.text.replace("\x00", "")  # PostgreSQL text holds no NUL
    if result.stop_reason == "refusal":
        raise Refusal(f"The model refused to answer (stop_reason refusal, {len(text)} characters).")
    if result.stop_reason == "max_tokens" and text.strip():
        if skill.output_format == Skill.OutputFormat.JSON:
            raise AnswerTooLong(
                f"The answer reached the skill's limit of {skill.max_output_tokens} output "
                "tokens (stop_reason max_tokens): its JSON document is cut."
            )
        text += CUT_NOTE.format(limit=skill.max_output_tokens)
    return parse_output(skill, text)


def _settle(job: Job, token: uuid.UUID, outcome: Outcome, task_id: str) -> Retry | None:
    """Act on a failed attempt's outcome: hold the job, fail it, or retry it with backoff."""
    logger.warning("Job %s: %s: %s", job.public_id, outcome.kind, outcome.detail)
    try:
        return _act_on(job, token, outcome, task_id)
    except InvalidTransition:
        return None  # the claim was lost meanwhile: its new holder decides


def _act_on(job: Job, token: uuid.UUID, outcome: Outcome, task_id: str) -> Retry | None:
    if outcome.kind == Kind.HOLD:
        _hold(job, token, outcome)
        return None
    if outcome.kind == Kind.FAIL:
        _fail(job, token, outcome.public, outcome.trace, task_id, detail=outcome.detail)
        return None
    if (
        outcome.kind == Kind.RETRY_ONCE
        and job.events.filter(kind=JobEvent.Kind.RETRYING, data__reason=outcome.reason).exists()
    ):
        detail = f"{outcome.detail} Again after one retry."
        _fail(job, token, failed_message(outcome), outcome.trace, task_id, detail=detail)
        return None
    return _retry_or_fail(job, token, outcome, task_id)


class _Progress:
    """Save partial output as text streams in, at most twice a second; stop if the job is lost."""

    def __init__(self, job: Job, token: uuid.UUID, lease: Lease) -> None:
        self.job, self.token, self.lease = job, token, lease
        self.saved_at = 0.0
        self.started = False
        # Celery's thread pool enforces no time limits, and a trickling stream never trips the
        # read timeout: this deadline bounds the whole call.
        self.deadline = time.monotonic() + settings.GENERATION_TIMEOUT

    def watch(self, abandon) -> None:
        self.lease.watch(abandon)

    def __call__(self, text: str, input_tokens: int, output_tokens: int) -> None:
        if self.lease.lost.is_set():
            raise LostClaim()
        now = time.monotonic()
        if now > self.deadline:
            raise RetryableGenerationError("The model took too long to answer.")
        if now - self.saved_at < settings.PARTIAL_SAVE_INTERVAL:
            return
        self.saved_at = now
        try:
            saved = Job.objects.filter(pk=self.job.pk, claim_token=self.token).update(
                partial_text=text.replace("\x00", ""),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                lease_expires_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS),
            )
        except DatabaseError as error:
            # Partial output is a courtesy; the lease keeper holds the job meanwhile.
            logger.warning("Job %s: partial output not saved: %s", self.job.public_id, error)
            return
        if not saved:
            self.lease.lose()
            raise LostClaim()
        if not self.started:
            self.started = True
            job_event(job=self.job, kind=JobEvent.Kind.PARTIAL, message="Output is streaming in.")


def _complete(job: Job, token: uuid.UUID, output, input_tokens: int, output_tokens: int) -> None:
    result = {
        "output_text": output.text,
        "output_json": output.data,
        "partial_text": "",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "error": "",
        "error_detail": "",
        "claim_token": None,
        "lease_expires_at": None,
    }
    if job.is_test:
        # Unbilled: nothing to hold for payment and nothing to settle. It vouches for the
        # version of the skill it ran on.
        with transaction.atomic():
            job_transition(
                job=job,
                to=Job.Status.COMPLETED,
                guard={"claim_token": token},
                message=f"Test run passed: {output_tokens} output tokens.",
                **result,
            )
            skill_record_test(skill_id=job.skill_id, fingerprint=job.skill_fingerprint)
        return
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
            **result,
        )
        if invoice.is_paid:
            job_settle(job=job)


def _retry_or_fail(job: Job, token: uuid.UUID, outcome: Outcome, task_id: str) -> Retry | None:
    if job.attempts > settings.GENERATION_MAX_RETRIES:
        _fail(
            job,
            token,
            failed_message(outcome),
            outcome.trace,
            task_id,
            detail=f"{outcome.detail} Gave up after {job.attempts} attempts.",
        )
        return None
    base = settings.GENERATION_RETRY_BASE * 2 ** (job.attempts - 1)
    countdown = min(base, RETRY_MAX_SECONDS) * random.uniform(0.5, 1.0)  # jitter
    # Release the claim; the lease keeps the reaper away until the retry is due.
    with transaction.atomic():
        released = Job.objects.filter(pk=job.pk, claim_token=token).update(
            claim_token=None,
            error=outcome.public,
            error_detail=outcome.detail,
            lease_expires_at=timezone.now()
            + timedelta(seconds=countdown + settings.JOB_LEASE_SECONDS),
        )
        if released:
            job_event(
                job=job,
                kind=JobEvent.Kind.RETRYING,
                message=f"{outcome.public} Attempt {job.attempts + 1} in {countdown:.1f} s.",
                data={"reason": outcome.reason, "detail": outcome.detail},
            )
    return Retry(countdown=countdown) if released else None


def _hold(job: Job, token: uuid.UUID, outcome: Outcome) -> None:
    """Put the job on hold until the platform's key works again, and tell the operators."""
    with transaction.atomic():
        job_transition(
            job=job,
            to=Job.Status.HELD,
            guard={"claim_token": token},
            message=outcome.public,
            error=outcome.public,
            error_detail=outcome.detail,
            partial_text="",
            claim_token=None,
            lease_expires_at=None,
        )
        alert_raise(
            kind=OperatorAlert.Kind.AI_PLATFORM,
            message=f"{outcome.detail} Paid jobs wait and resume once the key works.",
        )


def _fail(
    job: Job, token: uuid.UUID, message: str, trace: str, task_id: str, *, detail: str = ""
) -> None:
    """Fail the job for good: what was paid goes back, and a DeadLetter row operators can
    replay. A failed test run only tells its provider why (it was never billed, and a new test
    run is its replay)."""
    failure = {
        "message": message,
        "error": message,
        "error_detail": detail,
        "partial_text": "",
        "claim_token": None,
        "lease_expires_at": None,
    }
    if job.is_test:
        job_transition(job=job, to=Job.Status.FAILED, guard={"claim_token": token}, **failure)
        logger.info("Test run %s failed: %s", job.public_id, detail or message)
        return
    with transaction.atomic():
        invoice = invoice_lock(invoice_id=job.invoice_id)
        job.invoice = invoice
        job_transition(job=job, to=Job.Status.FAILED, guard={"claim_token": token}, **failure)
        job_refund_failed(job=job, invoice=invoice)
        DeadLetter.objects.create(
            job=job,
            task_name=TASK_NAME,
            task_id=task_id,
            args=[job.pk],
            exception=detail or message,
            traceback=trace if trace.strip() != "NoneType: None" else "",
            attempts=job.attempts,
        )
    logger.warning("Job %s failed: %s", job.public_id, detail or message)


def jobs_reap() -> int:
    """Queue again the jobs whose message was lost or whose worker died, and complete held
    results whose invoice was paid meanwhile.

    A job is queued again at most once per REQUEUE_PAID_AFTER: after an outage the queue may
    hold a backlog, and a message behind it is not lost, only late.
    """
    now = timezone.now()
    stuck = Job.objects.stuck_unstarted(before=now - timedelta(seconds=settings.REQUEUE_PAID_AFTER))
    abandoned = Job.objects.lease_expired(now=now)
    job_ids = _requeue(stuck | abandoned, now=now)
    if job_ids:
        logger.info("Reaper queued %d job(s) again: %s", len(job_ids), job_ids)
    for job in Job.objects.delivered_and_paid().select_related("skill__agent"):
        with transaction.atomic():
            job.invoice = invoice_lock(invoice_id=job.invoice_id)
            job.refresh_from_db(fields=["status"])
            if job.invoice.is_paid:
                job_mark_paid(job=job)
    return len(job_ids)


def jobs_resume_held() -> int:
    """While jobs wait for the platform, probe its AI key; once it works, queue them again."""
    alert = OperatorAlert.objects.filter(
        kind=OperatorAlert.Kind.AI_PLATFORM, resolved_at__isnull=True
    )
    if not alert.exists() and not Job.objects.held().exists():
        return 0
    try:
        ai.get_backend().probe()
    except PlatformUnavailable as error:
        logger.warning("The AI platform still refuses the key: %s", error.detail)
        return 0
    except GenerationError as error:
        logger.warning("The AI platform could not be probed: %s", error.detail)
        return 0
    alert_clear(kind=OperatorAlert.Kind.AI_PLATFORM)
    job_ids = _requeue(Job.objects.held(), now=timezone.now())
    if job_ids:
        logger.info("The AI platform works again: queued %d held job(s)", len(job_ids))
    return len(job_ids)


def _requeue(jobs, *, now) -> list[int]:
    """Queue each of `jobs` not queued again within REQUEUE_PAID_AFTER; return their ids.

    The stamp is a conditional update per job, so two reapers at once queue a job once.
    """
    from jobs.services import enqueue_generation

    since = now - timedelta(seconds=settings.REQUEUE_PAID_AFTER)
    queued = []
    for job_id in jobs.not_requeued_since(since).values_list("pk", flat=True):
        if Job.objects.filter(pk=job_id).not_requeued_since(since).update(requeued_at=now):
            enqueue_generation(job_id)
            queued.append(job_id)
    return queued
