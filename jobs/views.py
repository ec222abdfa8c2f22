from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control, never_cache

from jobs import selectors
from jobs.buyers import browser_token
from jobs.models import Job
from jobs.rendering import render_result
from payments.forms import TxHashForm
from payments.qr import qr_svg

# Pages with a buyer's prompt, result or CSRF token: no shared cache and no back-forward cache
# may keep them.
private_no_store = cache_control(private=True, no_store=True)


def _job_or_404(public_id) -> Job:
    try:
        return selectors.job_get(public_id=public_id)
    except Job.DoesNotExist:
        raise Http404("No such job.") from None


@private_no_store
def job_detail(request, public_id, tx_form: TxHashForm | None = None, status: int = 200):
    """The buyer's page: status, invoice, live progress, timeline and the result."""
    job = _job_or_404(public_id)
    invoice = getattr(job, "invoice", None)
    released = selectors.content_released(job)
    context = {
        "job": job,
        "invoice": invoice,
        "content_released": released,
        "elapsed": selectors.elapsed_seconds(job),
        "events": job.events.all(),
        "payments": invoice.payments.all() if invoice else [],
        "tx_form": tx_form or TxHashForm(),
        "qr": qr_svg(invoice.payment_uri) if invoice and invoice.is_open else "",
        "result": render_result(job) if released and job.has_result else None,
        "status_payload": selectors.job_status_payload(job),
    }
    return render(request, "jobs/detail.html", context, status=status)


@never_cache
def job_status(request, public_id):
    """The job's live state as JSON, polled by the job page and read by other tools."""
    return JsonResponse(selectors.job_status_payload(_job_or_404(public_id)))


@private_no_store
def my_jobs(request):
    jobs = selectors.my_jobs(user=request.user, browser_token=browser_token(request.session))
    return render(request, "jobs/my_jobs.html", {"jobs": jobs})
