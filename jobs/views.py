"""The buyer's pages: order a skill, follow and pay the job, dispute its result."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.buyers import browser_token
from jobs.forms import DisputeForm, OrderForm
from jobs.models import Job
from jobs.rendering import render_result
from marketplace import selectors as catalog
from marketplace.errors import ApplicationError
from marketplace.models import Skill
from marketplace.ratelimits import client_ip, rate_limit
from payments import devwallet
from payments.chain import ChainError
from payments.forms import TxHashForm
from payments.models import Submission
from payments.qr import qr_svg
from payments.services.submissions import Reason
from payments.services.submissions import payment_submit as submit_hash


@rate_limit("orders")
def skill_detail(request, agent_slug: str, skill_slug: str):
    """Show a skill and its order form; a valid order creates the job and goes to its page."""
    try:
        skill = catalog.skill_get(agent_slug=agent_slug, skill_slug=skill_slug)
    except Skill.DoesNotExist:
        raise Http404("No such skill.") from None
    form = OrderForm(request.POST or None, skill=skill)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_create(
                skill=skill,
                prompt=form.cleaned_data["prompt"],
                buyer=request.user,
                browser_token=browser_token(request.session, create=True),
                client_address=client_ip(request),
                payment_mode=form.cleaned_data.get("payment_mode", ""),
            )
        except ApplicationError as error:
            form.add_error("prompt" if error.code == "invalid_order" else None, error.message)
        else:
            return redirect(job)
    status = 400 if form.errors else 200
    context = {"skill": skill, "form": form, "dispute_window": settings.DISPUTE_WINDOW_SECONDS}
    return render(request, "marketplace/skill.html", context, status=status)


# Pages with a buyer's prompt, result or CSRF token: no shared cache and no back-forward cache
# may keep them.
private_no_store = cache_control(private=True, no_store=True)


def _job_or_404(public_id) -> Job:
    try:
        return selectors.job_get(public_id=public_id)
    except Job.DoesNotExist:
        raise Http404("No such job.") from None


@private_no_store
def job_detail(
    request,
    public_id,
    tx_form: TxHashForm | None = None,
    dispute_form: DisputeForm | None = None,
    status: int = 200,
):
    """The buyer's page: status, invoice, live progress, timeline and the result."""
    job = _job_or_404(public_id)
    payload = selectors.job_status_payload(job)
    pay = payload["invoice"]
    released = payload["job"]["content_released"]
    context = {
        "job": job,
        "invoice": job.invoice,
        "pay": pay,
        "content_released": released,
        "elapsed": payload["job"]["elapsed_seconds"],
        "events": job.events.all(),
        "payments": payload["payments"],
        "refunds": payload["refunds"],
        "settlement": payload["settlement"],
        "tx_form": tx_form or TxHashForm(),
        "dispute_form": dispute_form or DisputeForm(),
        "qr": qr_svg(job.invoice.payment_uri) if pay["payable"] else "",
        "result": render_result(job) if released and job.has_result else None,
        "status_payload": payload,
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


@require_POST
@rate_limit("payment_submit")
def payment_submit(request, public_id):
    """Take a transaction hash (and maybe the sender's claim signature) for the job's invoice."""
    job = get_object_or_404(Job.objects.public().select_related("invoice"), public_id=public_id)
    form = TxHashForm(request.POST)
    if form.is_valid():
        try:
            submission = submit_hash(
                invoice=job.invoice,
                tx_hash=form.cleaned_data["tx_hash"],
                signature=form.cleaned_data["signature"],
            )
        except ChainError:
            messages.warning(request, Reason.NODE_DOWN)
            return redirect(job)
        except ApplicationError as error:
            form.add_error("tx_hash", error.message)
        else:
            _report(request, submission)
            return redirect(job)
    return job_detail(request, public_id, tx_form=form, status=400)


@require_POST
@rate_limit("payment_submit")
def dev_pay(request, public_id):
    """Pay the invoice from a funded anvil account (DEBUG on the dev chain only)."""
    if not devwallet.enabled():
        raise Http404("The dev wallet is off.")
    job = get_object_or_404(Job.objects.public().select_related("invoice"), public_id=public_id)
    try:
        submission = submit_hash(invoice=job.invoice, tx_hash=devwallet.pay(job.invoice))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        _report(request, submission)
    return redirect(job)


def _report(request, submission: Submission) -> None:
    invoice = submission.invoice
    if submission.status == Submission.Status.ACCEPTED:
        invoice.refresh_from_db()
        if invoice.is_paid:
            messages.success(request, "Payment confirmed.")
        elif invoice.pending_units:
            messages.info(request, "Payment seen; waiting for confirmations.")
        else:
            messages.info(request, "Payment received; the rest is still due.")
    elif submission.status == Submission.Status.WAITING:
        messages.info(request, submission.reason)
    else:
        messages.error(request, submission.reason)


@require_POST
@rate_limit("disputes")
def dispute(request, public_id):
    """Open a dispute of a completed job (whoever holds the job's link is its buyer)."""
    job = get_object_or_404(Job.objects.public(), public_id=public_id)
    form = DisputeForm(request.POST)
    if form.is_valid():
        try:
            services.dispute_open(job=job, reason=form.cleaned_data["reason"])
        except ApplicationError as error:
            form.add_error("reason", error.message)
        else:
            messages.success(request, "Your dispute is open. An operator will review it.")
            return redirect(job)
    return job_detail(request, public_id, dispute_form=form, status=400)
