"""Catalog rows, jobs and payments for the bench and the drills, through Vendo's services."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connections

from payments.devchain import ANVIL_ACCOUNTS

PROMPT = "Summarise for a busy reader: the quick brown fox jumps over the lazy dog, twice."


@dataclass
class JobRef:
    pk: int
    public_id: str
    amount_units: int
    tx_hash: str = ""


def _thread_done() -> None:
    # Django's connections are per thread: close this thread's so no slot is held idle.
    connections.close_all()


def provider(username: str = "bench-provider"):
    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    return user


def agent(slug: str, owner=None):
    from marketplace.models import Agent

    found, _ = Agent.objects.get_or_create(
        slug=slug,
        defaults={
            "owner": owner or provider(),
            "name": slug.replace("-", " ").title(),
            "description": "A bench agent.",
            "payout_address": ANVIL_ACCOUNTS[5][0],
        },
    )
    return found


def skill(slug: str, price: str, *, agent_slug: str = "bench-agent"):
    """A fixed-price Markdown skill; each bench phase uses its own price, so its own tails."""
    from marketplace.models import Skill

    found, _ = Skill.objects.select_related("agent").get_or_create(
        agent=agent(agent_slug),
        slug=slug,
        defaults={
            "name": slug.replace("-", " ").title(),
            "service_key": slug,
            "category": Skill.Category.WRITING,
            "description": "Summarises text for the bench.",
            "system_prompt": "Summarise the user's text in three bullets.",
            "model": "claude-haiku-4-5",
            "max_output_tokens": 256,
            "price": Decimal(price),
            # Bench skills are listed at once: no test run (a test run is a provider's check).
            "status": Skill.Status.LIVE,
        },
    )
    return Skill.objects.select_related("agent").get(pk=found.pk)


def catalog_fill(total: int) -> int:
    """Add skills (ten per agent) until the catalog lists `total` active skills."""
    from marketplace.models import Skill

    have = Skill.objects.listed().count()
    owner = provider()
    new = []
    for n in range(have, total):
        owner_agent = agent(f"catalog-agent-{n // 10}", owner)
        new.append(
            Skill(
                agent=owner_agent,
                name=f"Catalog skill {n}",
                slug=f"catalog-skill-{n}",
                service_key=f"catalog-skill-{n}",
                category=list(Skill.Category.values)[n % len(Skill.Category.values)],
                description=f"Catalog skill number {n}, for the query count.",
                system_prompt="Answer briefly.",
                model="claude-haiku-4-5",
                price=Decimal("1.500000"),
                status=Skill.Status.LIVE,
            )
        )
    Skill.objects.bulk_create(new, batch_size=500)
    return Skill.objects.listed().count()


def jobs_create(skill_obj, count: int, *, threads: int = 3, prompt_for=None) -> list[JobRef]:
    """Order `skill_obj` `count` times through jobs.services.job_create (job + invoice)."""
    from jobs.services import job_create

    def one(i: int) -> JobRef:
        prompt = prompt_for(i) if prompt_for else f"{PROMPT} ({i})"
        # A buyer of its own per order: one client may hold only a few unpaid orders.
        job = job_create(skill=skill_obj, prompt=prompt, browser_token=f"bench-{i}")
        return JobRef(job.pk, str(job.public_id), job.invoice.amount_units)

    def batch(indices) -> list[JobRef]:
        try:
            return [one(i) for i in indices]
        finally:
            _thread_done()

    chunks = [range(n, count, threads) for n in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(batch, chunks))
    return sorted((ref for part in parts for ref in part), key=lambda ref: ref.pk)


def transfers_make(chain, refs: list[JobRef]) -> None:
    """Make each job's real on-chain payment (not yet submitted to Vendo)."""
    hashes = chain.pay([ref.amount_units for ref in refs])
    for ref, tx_hash in zip(refs, hashes, strict=True):
        ref.tx_hash = tx_hash


@dataclass
class Submitted:
    ref: JobRef
    scheduled: float
    started: float
    seconds: float
    outcome: str  # "confirmed", "pending", "rejected: ..." or the exception


def payments_submit(
    refs: list[JobRef], *, rate: float | None = None, threads: int = 4
) -> list[Submitted]:
    """Submit each job's tx hash through payment_submit, as the pay view does.

    With `rate` (per second) submissions are scheduled open-loop at that rate; without it they
    go as fast as `threads` threads allow.
    """
    from jobs.models import Job

    work: queue.Queue = queue.Queue()
    done: list[Submitted] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                ref, scheduled = item
                started = time.time()
                t0 = time.perf_counter()
                try:
                    outcome = submit(Job.objects.select_related("invoice").get(pk=ref.pk), ref)
                except Exception as error:  # recorded, counted by the caller
                    outcome = f"{type(error).__name__}: {error}"
                seconds = time.perf_counter() - t0
                with lock:
                    done.append(Submitted(ref, scheduled, started, seconds, outcome))
        finally:
            _thread_done()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start = time.time() + 0.1
    for i, ref in enumerate(refs):
        scheduled = start + i / rate if rate else time.time()
        if rate:
            time.sleep(max(0.0, scheduled - time.time()))
        work.put((ref, scheduled))
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join()
    return done


def submit(job, ref: JobRef) -> str:
    """Submit the job's transaction; return "confirmed", "pending" or "rejected: <reason>"."""
    from payments.models import Submission
    from payments.services.submissions import payment_submit

    submission = payment_submit(invoice=job.invoice, tx_hash=ref.tx_hash)
    if submission.status == Submission.Status.ACCEPTED:
        job.invoice.refresh_from_db()
        return "confirmed" if job.invoice.is_paid else "pending"
    if submission.status == Submission.Status.WAITING:
        return "pending"
    return f"rejected: {submission.reason}"
