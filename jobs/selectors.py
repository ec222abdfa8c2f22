"""Reads for job pages and the status endpoint."""

from datetime import datetime

from django.db.models import Prefetch, Q
from django.utils import timezone

from jobs.buyers import browser_hash
from jobs.models import Job, JobEvent
from payments.models import Invoice

MY_JOBS_LIMIT = 50


def job_get(*, public_id) -> Job:
    """Return the job with everything its page shows, in a fixed number of queries."""
    return (
        Job.objects.select_related("skill__agent", "invoice")
        .prefetch_related(
            Prefetch("events", queryset=JobEvent.objects.order_by("created_at", "id")),
            "invoice__payments",
        )
        .get(public_id=public_id)
    )


def my_jobs(*, user, browser_token: str) -> list[Job]:
    """Return the jobs this browser ordered, and a signed-in buyer's own, newest first."""
    mine = Q(buyer_browser=browser_hash(browser_token)) if browser_token else Q(pk__in=[])
    if user.is_authenticated:
        mine |= Q(buyer=user)
    jobs = Job.objects.select_related("skill__agent", "invoice").filter(mine)
    return list(jobs.order_by("-created_at")[:MY_JOBS_LIMIT])


def content_released(job: Job) -> bool:
    """Whether any of the job's answer may leave the server: text, JSON or a partial.

    The one rule for every page, payload and API: only once the job's invoice is paid. Until
    then (pay after delivery, or anything unpaid) buyers see progress, never content.
    """
    invoice = getattr(job, "invoice", None)
    return invoice is not None and invoice.status == Invoice.Status.PAID


def elapsed_seconds(job: Job, *, now: datetime | None = None) -> int | None:
    """Return the seconds the run has taken so far (or took), None before it started."""
    if job.started_at is None:
        return None
    end = job.delivered_at or job.completed_at or job.failed_at
    if end is None or end < job.started_at:
        end = now or timezone.now()
    return max(int((end - job.started_at).total_seconds()), 0)


def job_status_payload(job: Job) -> dict:
    """Return the job's live state: the /jobs/<uuid>/status.json contract."""
    invoice = getattr(job, "invoice", None)
    released = content_released(job)
    payload = {
        "job": {
            "id": str(job.public_id),
            "status": job.status,
            "status_label": job.get_status_display(),
            "attempts": job.attempts,
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            # Progress, which is all an unpaid job shows.
            "elapsed_seconds": elapsed_seconds(job),
            "content_released": released,
            "partial_text": job.partial_text if job.is_running and released else "",
            # A fixed message per outcome; the detail stays in the admin.
            "error": job.error,
            "updated_at": job.updated_at.isoformat(),
        },
        "invoice": None,
        "payments": [],
        "events": [
            {
                "kind": event.kind,
                "label": event.get_kind_display(),
                "message": event.message,
                "at": event.created_at.isoformat(),
            }
            for event in job.events.all()
        ],
    }
    if invoice is not None:
        payload["invoice"] = {
            "status": invoice.status,
            "status_label": invoice.get_status_display(),
            "amount_units": invoice.amount_units,
            "paid_units": int(invoice.paid_units),
            "pending_units": int(invoice.pending_units),
            "due_units": invoice.due_units,
            "excess_units": int(invoice.excess_units),
            "decimals": invoice.token_decimals,
            "token_address": invoice.token_address,
            "chain_id": invoice.chain_id,
            "recipient": invoice.recipient,
            "expires_at": invoice.expires_at.isoformat().replace("+00:00", "Z"),
            "payment_uri": invoice.payment_uri,
        }
        payload["payments"] = [
            {
                "tx_hash": payment.tx_hash,
                "log_index": payment.log_index,
                "amount_units": None if payment.amount_units is None else int(payment.amount_units),
                "status": payment.status,
                "status_label": payment.get_status_display(),
                "source": payment.source,
                "confirmations": payment.confirmations,
                "reason": payment.reason,
            }
            for payment in invoice.payments.all()
        ]
    return payload
