"""Reads for job pages and the status endpoint."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Prefetch, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from jobs.buyers import browser_hash
from jobs.models import DeadLetter, Job, JobEvent
from marketplace.models import Agent, PaymentMode, Skill
from payments.models import Invoice, OnchainTransfer, Payment, Submission
from payments.selectors import Earnings, agent_earnings, token_decimals

MY_JOBS_LIMIT = 50
SUBMISSION_STATUS = {
    Submission.Status.WAITING: "pending",
    Submission.Status.REJECTED: "rejected",
    Submission.Status.RETIRED: "retired",
}


def job_get(*, public_id) -> Job:
    """Return the ordered job (never a test run) with everything its page shows, in a fixed
    number of queries."""
    return (
        Job.objects.public()
        .select_related("skill__agent", "invoice", "dispute")
        .prefetch_related(
            Prefetch("events", queryset=JobEvent.objects.order_by("created_at", "id")),
            "invoice__payments",
            "invoice__submissions",
            Prefetch("invoice__refunds", queryset=OnchainTransfer.objects.order_by("created_at")),
        )
        .get(public_id=public_id)
    )


def my_jobs(*, user, browser_token: str) -> list[Job]:
    """Return the jobs this browser ordered, and a signed-in buyer's own, newest first."""
    mine = Q(buyer_browser=browser_hash(browser_token)) if browser_token else Q(pk__in=[])
    if user.is_authenticated:
        mine |= Q(buyer=user)
    jobs = Job.objects.public().select_related("skill__agent", "invoice").filter(mine)
    return list(jobs.order_by("-created_at")[:MY_JOBS_LIMIT])


def open_orders(*, browser: str, address: str) -> list[Job]:
    """Return a client's unpaid orders (their invoices still open), by browser or address."""
    mine = Q(pk__in=[])
    if browser:
        mine |= Q(buyer_browser=browser)
    if address:
        mine |= Q(buyer_address=address)
    jobs = Job.objects.filter(mine, invoice__status__in=Invoice.OPEN_STATUSES)
    return list(jobs.select_related("skill").order_by("created_at")[:100])


def _units(value) -> str:
    """Base units as a JSON string: an integer of any size, never a float."""
    return str(int(value))


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def content_released(job: Job) -> bool:
    """Whether any of the job's answer may leave the server: text, JSON or a partial.

    The one rule for every page, payload and API: only once the job's invoice is paid. Until
    then (pay after delivery, or anything unpaid) buyers see progress, never content. A test
    run has no invoice and no public page: nothing of it is released.
    """
    return job.invoice is not None and job.invoice.is_paid


def elapsed_seconds(job: Job, *, now: datetime | None = None) -> int | None:
    """Return the seconds the run has taken so far (or took), None before it started."""
    if job.started_at is None:
        return None
    end = job.delivered_at or job.completed_at or job.failed_at
    if end is None or end < job.started_at:
        end = now or timezone.now()
    return max(int((end - job.started_at).total_seconds()), 0)


def invoice_payload(job: Job) -> dict:
    """The invoice block: amounts in base units as strings, and what the pay block offers."""
    invoice: Invoice = job.invoice
    submissions = list(invoice.submissions.all())
    waiting = sum(1 for s in submissions if s.status == Submission.Status.WAITING)
    # Pay-after-delivery asks for money once the result exists, not before.
    asks_now = job.payment_mode == PaymentMode.UPFRONT or job.status == Job.Status.DELIVERED
    payable = bool(invoice.is_open and invoice.due_units and not waiting and asks_now)
    return {
        "status": invoice.status,
        "status_label": invoice.get_status_display(),
        "amount_units": _units(invoice.amount_units),
        "paid_units": _units(invoice.paid_units),
        "pending_units": _units(invoice.pending_units),
        "due_units": _units(invoice.due_units),
        "excess_units": _units(invoice.excess_units),
        "late_units": _units(invoice.late_units),
        "refunded_units": _units(invoice.refunded_units),
        "decimals": invoice.token_decimals,
        "token_address": invoice.token_address,
        "chain_id": invoice.chain_id,
        "recipient": invoice.recipient,
        "expires_at": _iso(invoice.expires_at),
        "payment_uri": invoice.payment_uri if payable else "",
        # What the pay block may offer: only what is still due, never the whole amount again.
        "payable": payable,
        # Money on its way: transfers awaiting confirmations, or hashes not found on chain yet.
        "on_its_way": bool(invoice.is_open and (invoice.pending_units or waiting)),
        "waiting_hashes": waiting,
        "reference": invoice.reference,
    }


def payments_payload(invoice: Invoice) -> list[dict]:
    """Transfers counted for the invoice and the hashes submitted for it, oldest first."""
    rows = []
    for payment in invoice.payments.all():
        rows.append(
            (
                payment.created_at,
                {
                    "tx_hash": payment.tx_hash,
                    "log_index": payment.log_index,
                    "amount_units": _units(payment.amount_units),
                    "status": payment.status,
                    "status_label": payment.get_status_display(),
                    "source": payment.source,
                    "confirmations": payment.confirmations,
                    "reason": payment.reason,
                    "from_address": payment.from_address,
                    "late": payment.is_late,
                },
            )
        )
    for submission in invoice.submissions.all():
        if submission.status == Submission.Status.ACCEPTED:
            continue  # shown by its transfers
        rows.append(
            (
                submission.created_at,
                {
                    "tx_hash": submission.tx_hash,
                    "log_index": None,
                    "amount_units": None,
                    "status": SUBMISSION_STATUS[submission.status],
                    "status_label": submission.get_status_display(),
                    "source": Payment.Source.SUBMITTED,
                    "confirmations": 0,
                    "reason": submission.reason,
                    "code": submission.code,
                },
            )
        )
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def refunds_payload(invoice: Invoice) -> list[dict]:
    return [
        {
            "to_address": refund.to_address,
            "amount_units": _units(refund.amount_units),
            "status": refund.status,
            "status_label": refund.get_status_display(),
            "tx_hash": refund.tx_hash or None,
            "cause": refund.cause,
            "cause_label": refund.get_cause_display(),
        }
        for refund in invoice.refunds.all()
        if refund.status != OnchainTransfer.Status.CANCELLED
    ]


def settlement_payload(job: Job) -> dict:
    """Where the job's money went: the provider's share, the fee, refunds, the dispute."""
    invoice = job.invoice
    dispute = getattr(job, "dispute", None)
    now = timezone.now()
    if invoice.settled_at is None:
        state = "unsettled"
    elif invoice.agent_id is None:
        state = "refunded"
    elif invoice.released_at is None:
        state = "held"
    else:
        state = "released"
    return {
        "state": state,
        "settled_at": _iso(invoice.settled_at),
        "price_units": _units(invoice.price_units),
        "provider_share_units": _units(invoice.share_units),
        "fee_units": _units(invoice.fee_units),
        "held_units": _units(invoice.held_units),
        "released_at": _iso(invoice.released_at),
        "refunded_units": _units(invoice.refunded_units),
        "dispute_until": _iso(job.dispute_closes_at) if job.completed_at else None,
        "can_dispute": dispute is None and job.can_dispute(now),
        "dispute": None
        if dispute is None
        else {
            "reason": dispute.reason,
            "opened_at": _iso(dispute.opened_at),
            "resolution": dispute.resolution or None,
            "resolution_label": dispute.get_resolution_display() if dispute.resolution else "",
            "refund_units": _units(dispute.refund_units),
            "note": dispute.note,
        },
    }


def job_status_payload(job: Job) -> dict:
    """Return the job's live state: the /jobs/<uuid>/status.json contract.

    Amounts in base units are strings (an integer of any size survives JSON); only what the
    buyer may see is included: no answer text until the invoice is paid.
    """
    released = content_released(job)
    return {
        "job": {
            "id": str(job.public_id),
            "status": job.status,
            "status_label": job.get_status_display(),
            "payment_mode": job.payment_mode,
            "attempts": job.attempts,
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            # Progress, which is all an unpaid job shows.
            "elapsed_seconds": elapsed_seconds(job),
            "content_released": released,
            "partial_text": job.partial_text if job.is_running and released else "",
            # A fixed message per outcome; the detail stays in the admin.
            "error": job.error,
            "started_at": _iso(job.started_at),
            "updated_at": job.updated_at.isoformat(),
        },
        "invoice": invoice_payload(job),
        "payments": payments_payload(job.invoice),
        "refunds": refunds_payload(job.invoice),
        "settlement": settlement_payload(job),
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


# ------------------------------------------------------------------------------
# The console's homes (the admin index): a fixed number of queries whatever the data size
# ------------------------------------------------------------------------------

RECENT_JOBS = 5
RECENT_DAYS = 30
# A job that delivered its result counts as a success, whatever became of its money after.
SUCCEEDED = (Job.Status.DELIVERED, Job.Status.COMPLETED, Job.Status.DISPUTED, Job.Status.REFUNDED)


@dataclass
class AgentHome:
    """One agent's card on its provider's home."""

    agent: Agent
    live: list[Skill] = field(default_factory=list)
    drafts: list[Skill] = field(default_factory=list)
    jobs_today: int = 0
    jobs_week: int = 0
    succeeded_week: int = 0
    failed_week: int = 0
    recent: list[Job] = field(default_factory=list)
    failures: list[Job] = field(default_factory=list)
    earnings: Earnings = field(default_factory=Earnings)

    @property
    def success_rate(self) -> int | None:
        """Percent of the week's finished jobs that delivered a result (None: none finished)."""
        finished = self.succeeded_week + self.failed_week
        return round(100 * self.succeeded_week / finished) if finished else None


@dataclass
class ProviderHome:
    agents: list[AgentHome]
    test_runs_left: int
    test_runs_per_day: int
    decimals: int


def _latest(jobs, *, per_agent: int) -> list[Job]:
    """The latest `per_agent` of `jobs` for each agent, in one query (a window function)."""
    ranked = jobs.annotate(
        rank=Window(RowNumber(), partition_by=F("skill__agent_id"), order_by=F("created_at").desc())
    )
    return list(
        ranked.filter(rank__lte=per_agent)
        .select_related("skill")
        .order_by("skill__agent_id", "-created_at")
    )


def provider_home(*, user, now: datetime | None = None) -> ProviderHome:
    """Return a provider's home: per agent, its live and draft skills, jobs today and over 7
    days, the success rate, failed jobs to look at, recent jobs and earnings (held, payable,
    paid out, with the payouts' transactions)."""
    from jobs.services import job_test_runs_left, start_of_day

    now = now or timezone.now()
    today = start_of_day(now)
    # "7 days" as the admin's date filters say it: since midnight seven days ago.
    week = today - timedelta(days=7)
    cards = {agent.pk: AgentHome(agent=agent) for agent in Agent.objects.owned_by(user)}
    ids = list(cards)
    for skill in Skill.objects.filter(agent_id__in=ids).order_by("name"):
        card = cards[skill.agent_id]
        (card.live if skill.is_live else card.drafts).append(skill)
    ordered = Job.objects.public().filter(skill__agent_id__in=ids)
    stats = (
        ordered.filter(created_at__gte=week)
        .order_by()
        .values("skill__agent_id")
        .annotate(
            today=Count("pk", filter=Q(created_at__gte=today)),
            week=Count("pk", filter=Q(created_at__gte=week)),
            succeeded=Count("pk", filter=Q(created_at__gte=week, status__in=SUCCEEDED)),
            failed=Count("pk", filter=Q(created_at__gte=week, status=Job.Status.FAILED)),
        )
    )
    for row in stats:
        card = cards[row["skill__agent_id"]]
        card.jobs_today, card.jobs_week = row["today"], row["week"]
        card.succeeded_week, card.failed_week = row["succeeded"], row["failed"]
    recent = ordered.filter(created_at__gte=now - timedelta(days=RECENT_DAYS))
    for job in _latest(recent, per_agent=RECENT_JOBS):
        cards[job.skill.agent_id].recent.append(job)
    # Failed for good and not run again: what a provider may want to look into.
    failed = ordered.filter(status=Job.Status.FAILED, failed_at__gte=week)
    for job in _latest(failed, per_agent=RECENT_JOBS):
        cards[job.skill.agent_id].failures.append(job)
    for agent_id, earnings in agent_earnings(agent_ids=ids).items():
        cards[agent_id].earnings = earnings
    return ProviderHome(
        agents=list(cards.values()),
        test_runs_left=job_test_runs_left(owner=user, now=now),
        test_runs_per_day=settings.PROVIDER_TEST_RUNS_PER_DAY,
        decimals=token_decimals(),
    )


@dataclass
class JobsOverview:
    failed: int
    failed_week: int
    held: int
    running: int
    dead_letters: int
    latest_failures: list[Job]


def jobs_overview(*, now: datetime | None = None) -> JobsOverview:
    """Jobs an operator watches: failed ones (and the latest), held, running, dead letters."""
    from jobs.services import start_of_day

    week = start_of_day(now) - timedelta(days=7)
    counts = (
        Job.objects.public()
        .order_by()
        .aggregate(
            failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
            failed_week=Count("pk", filter=Q(status=Job.Status.FAILED, failed_at__gte=week)),
            held=Count("pk", filter=Q(status=Job.Status.HELD)),
            running=Count("pk", filter=Q(status__in=[Job.Status.PAID, Job.Status.IN_PROGRESS])),
        )
    )
    latest = (
        Job.objects.public()
        .filter(status=Job.Status.FAILED)
        .select_related("skill__agent")
        .order_by("-failed_at")[:RECENT_JOBS]
    )
    return JobsOverview(
        failed=counts["failed"],
        failed_week=counts["failed_week"],
        held=counts["held"],
        running=counts["running"],
        dead_letters=DeadLetter.objects.filter(resolved_at__isnull=True).count(),
        latest_failures=list(latest),
    )
