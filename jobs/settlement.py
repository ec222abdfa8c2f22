"""What a job's money does: the split on completion, refunds on failure, held earnings
released when the dispute window closes, disputes decided (DESIGN.md, "Settlement").

The money moves through `payments.services.settlement`; the rules that decide how much and
when live here, because only jobs know what an invoice was for.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobEvent
from marketplace.models import OperatorAlert
from marketplace.services import alert_raise
from payments.models import Invoice, OnchainTransfer
from payments.services import settlement as money
from payments.services.invoices import invoice_cancel, invoice_lock, invoice_reopen

BPS = 10_000


def provider_share(price_units: int) -> int:
    """The provider's share of a price: floor(price x (10000 - fee bps) / 10000)."""
    return int(price_units) * (BPS - settings.PLATFORM_FEE_BPS) // BPS


def job_settle(*, job: Job) -> None:
    """Split a completed job's paid invoice: share held for the agent, fee and tail to the
    platform, any excess back to its sender. The invoice row is locked by the caller."""
    invoice = job.invoice
    money.invoice_settle(
        invoice=invoice,
        agent_id=job.skill.agent_id,
        share_units=provider_share(invoice.price_units),
    )


def job_refund_failed(*, job: Job, invoice: Invoice) -> None:
    """A job that failed for good: cancel what is still asked, send back what was paid."""
    if invoice.is_open:
        invoice_cancel(invoice=invoice)
    else:
        # Held back a few minutes, so an operator who replays the job can still cancel it.
        money.invoice_refund_all(
            invoice=invoice,
            cause=OnchainTransfer.Cause.FAILED,
            not_before=timezone.now() + timedelta(seconds=settings.FAILED_REFUND_DELAY_SECONDS),
        )


def job_unrefund(*, job: Job, invoice: Invoice) -> None:
    """Take back a failed job's refunds before an operator runs it again (raise if gone)."""
    money.invoice_refunds_cancel(invoice=invoice)
    if invoice.status == Invoice.Status.CANCELLED:
        invoice_reopen(invoice=invoice)


def job_payment_taken_back(*, job: Job, message: str) -> None:
    """A reorganisation took back the payment of the job's invoice.

    A job not yet delivered holds its result at completion until it is paid again; one the
    buyer already has is flagged to operators.
    """
    from jobs.services import job_event

    job_event(job=job, kind=JobEvent.Kind.PAYMENT_REVERTED, message=message)
    if job.status in (Job.Status.COMPLETED, Job.Status.DISPUTED, Job.Status.REFUNDED):
        alert_raise(
            kind=OperatorAlert.Kind.PAYMENT_REVERTED,
            key=f"job:{job.public_id}",
            message=(
                f"Job {job.public_id} was delivered, then a reorganisation took its payment "
                f"back: {message}"
            ),
        )


def dispute_settle(*, job: Job, invoice: Invoice, refund_units: int) -> int:
    """Refund `refund_units` of a disputed job (none: the provider keeps its share)."""
    if refund_units:
        return money.dispute_refund(invoice=invoice, amount_units=refund_units)
    money.earnings_release(invoice=invoice)
    return 0


def jobs_release_earnings() -> int:
    """Make the held share of every job whose dispute window closed undisputed payable."""
    cutoff = timezone.now() - timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS)
    due = Job.objects.filter(
        status=Job.Status.COMPLETED,
        completed_at__lte=cutoff,
        invoice__released_at__isnull=True,
        invoice__settled_at__isnull=False,
    ).values_list("invoice_id", flat=True)
    released = 0
    for invoice_id in due:
        with transaction.atomic():
            invoice = invoice_lock(invoice_id=invoice_id)
            if invoice.released_at is None:
                money.earnings_release(invoice=invoice)
                released += 1
    return released
