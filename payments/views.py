from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from jobs.models import Job
from jobs.views import job_detail
from marketplace.errors import ApplicationError
from marketplace.ratelimits import rate_limit
from payments import services
from payments.forms import TxHashForm
from payments.models import Payment


@require_POST
@rate_limit("payment_submit")
def payment_submit(request, public_id):
    """Take the buyer's transaction hash and verify it against the job's invoice."""
    job = get_object_or_404(Job.objects.select_related("invoice"), public_id=public_id)
    form = TxHashForm(request.POST)
    if form.is_valid():
        try:
            payments = services.payment_submit(job=job, tx_hash=form.cleaned_data["tx_hash"])
        except ApplicationError as error:
            form.add_error("tx_hash", error.message)
        else:
            _report(request, payments)
            return redirect(job)
    return job_detail(request, public_id, tx_form=form, status=400)


@require_POST
@rate_limit("payment_submit")
def dev_pay(request, public_id):
    """Pay the invoice from a funded anvil account (DEBUG on the dev chain only)."""
    from payments import devwallet

    if not devwallet.enabled():
        raise Http404("The dev wallet is off.")
    job = get_object_or_404(Job.objects.select_related("invoice"), public_id=public_id)
    try:
        payments = services.payment_submit(job=job, tx_hash=devwallet.pay(job.invoice))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        _report(request, payments)
    return redirect(job)


def _report(request, payments: list[Payment]) -> None:
    for payment in payments:
        if payment.status == Payment.Status.REJECTED:
            messages.error(request, payment.reason)
        elif payment.log_index is None:
            messages.info(request, payment.reason)
        elif payment.status == Payment.Status.PENDING:
            messages.info(request, "Payment seen; waiting for confirmations.")
        else:
            messages.success(request, "Payment confirmed.")
