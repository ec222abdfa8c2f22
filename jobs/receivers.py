"""Jobs listen to payments through its one hook, `invoice_event`."""

from django.dispatch import receiver

from payments.signals import invoice_event


@receiver(invoice_event, dispatch_uid="jobs.on_invoice_event")
def on_invoice_event(sender, invoice, kind, message="", payment=None, **kwargs) -> None:
    from jobs.models import Job
    from jobs.services import job_on_invoice_event

    # One transaction may report several events (seen, then paid): read the job once.
    job = getattr(invoice, "_job_for_events", None)
    if job is None:
        job = Job.objects.select_related("skill__agent").filter(invoice=invoice).first()
        if job is None:  # an invoice being created with its job, or not a job's invoice
            return
        invoice._job_for_events = job
    job.invoice = invoice  # the caller's locked, current row
    job_on_invoice_event(job=job, kind=kind, message=message, payment=payment)
