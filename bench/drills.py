"""`make drills`: paid jobs keep their promise while workers die and Redis restarts.

Starts its own redis-server (on a free port, no persistence), anvil with TestUSDC, the Anthropic
stub (0.5 s per answer), a database of its own (vendo_drills), two Celery workers and beat (the
reaper every 2 s, leases of 5 s). Then 200 jobs are ordered and paid on chain, ten a second,
while:

- worker A is SIGKILLed (and started again a second later),
- Redis is SIGKILLed and started again on the same port, empty (every queued message is lost),
- worker B is SIGKILLed (and started again).

A fifth of the jobs fail for good (the model refuses them), so their payments go back. Once
the jobs are done, the money moves on (a 2 s dispute window, payouts every 3 s, refunds at
once) while worker A is SIGKILLed, the chain node restarts (it keeps its chain, loses its
pool) and worker B is SIGKILLed: transfers caught between their broadcast and its record show
how often a kill landed there.

Afterwards it counts jobs lost (paid on chain, yet neither completed nor failed), jobs
completed twice (more than one `success` event), dead letters and the time to drain; then it
proves the money: `ledger_check` passes, every payer's and the payout address's balance on
chain equals what the books say, and no transfer left the platform's wallet twice. Exits 1 if
any of that fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from eth_account import Account

from bench import seed, stats, workers
from bench.chain import BUYERS
from bench.stack import (
    PYTHON,
    ROOT,
    Stack,
    StackError,
    database_drop,
    database_recreate,
    django_setup,
    free_port,
    manage,
    port_open,
    services_from_env,
    terminate_on_signals,
    wait_for,
    with_database,
)

DB_NAME = "vendo_drills"
JOBS = 200
RATE = 10.0  # paid jobs per second
STUB_LATENCY = 0.5
CONCURRENCY = 20  # threads per worker
DRAIN_TIMEOUT = 150.0
SECRET_KEY = "drills-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# (seconds after the first payment, action)
FAULTS = [
    (4.0, "kill worker A"),
    (5.0, "start worker A"),
    (9.0, "kill redis"),
    (11.0, "start redis"),
    (14.0, "kill worker B"),
    (15.0, "start worker B"),
]
# (seconds after the last payment, action): while refunds and payouts are being sent.
SETTLE_FAULTS = [
    (0.0, "hunt broadcast"),
    (4.0, "restart chain"),
    (7.0, "kill worker B"),
    (8.0, "start worker B"),
]
FAIL_EVERY = 5  # one job in five fails for good: its payment goes back
FAIL_MARKER = "[the model refuses this one]"
SETTLE_TIMEOUT = 150.0
# Short timeouts, so every recovery path runs within the drill: the reaper (lease 5 s, lost
# messages after 8 s, every 2 s) and Redis's own redelivery of a dead worker's unacknowledged
# messages (visibility 12 s).
WORKER_SETTINGS = {
    "JOB_LEASE_SECONDS": "5",
    "REQUEUE_PAID_AFTER": "8",
    "REAPER_INTERVAL": "2",
    "CHAIN_SCAN_INTERVAL": "2",
    "GENERATION_TIMEOUT": "4",
    "ANTHROPIC_MAX_RETRIES": "0",
    "CELERY_TASK_SOFT_TIME_LIMIT": "6",
    "CELERY_TASK_TIME_LIMIT": "8",
    "CELERY_VISIBILITY_TIMEOUT": "12",
    "GENERATION_RETRY_BASE": "0.2",
    "PARTIAL_SAVE_INTERVAL": "0.5",
    # The money moves within the drill: a short dispute window, frequent payouts, refunds now.
    "DISPUTE_WINDOW_SECONDS": "2",
    "PAYOUT_INTERVAL_SECONDS": "3",
    "PAYOUT_MINIMUM": "0.5",
    "FAILED_REFUND_DELAY_SECONDS": "0",
}


def exit_reason(proc) -> str:
    """The Celery CRITICAL line of the process's last run, or its exit code."""
    text = proc.log_path.read_text(errors="replace")
    last_run = text[text.rfind("\n--- start") :]
    for line in last_run.splitlines():
        if "CRITICAL" in line or "Unrecoverable" in line:
            return line.split("]", 1)[-1].strip()
    return f"exit code {proc.popen.returncode}"


class Drill:
    def __init__(self, stack: Stack, db_url: str) -> None:
        self.stack, self.db_url = stack, db_url
        self.events: list[tuple[float, str]] = []
        self.unplanned: list[tuple[float, str, str]] = []
        self.planned_down: set[str] = set()
        self.lock = threading.RLock()
        self.began = time.monotonic()
        self.scratch = tempfile.mkdtemp(prefix="vendo-drills-")
        self.caught_mid_broadcast = 0
        self.caught_on_chain = 0
        stack.on_close(lambda: shutil.rmtree(self.scratch, ignore_errors=True))

    def step(self, message: str) -> None:
        print(f"[{time.monotonic() - self.began:6.1f}s] {message}", flush=True)

    # -- processes ---------------------------------------------------------------------------

    def redis_start(self) -> None:
        cmd = [
            self.redis_bin, "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        self.redis = self.stack.start("redis", cmd, os.environ.copy())
        wait_for(lambda: port_open(self.redis_port), timeout=10, what="redis", proc=self.redis)

    def worker_start(self, letter: str) -> None:
        name = f"drill-{letter.lower()}@drills"
        proc = workers.worker_start(
            self.stack, self.env, name=name, concurrency=CONCURRENCY, log=f"worker-{letter}"
        )
        self.workers[letter] = proc

    def beat_start(self) -> None:
        schedule = os.path.join(self.scratch, "celerybeat-schedule")
        cmd = [PYTHON, "-m", "celery", "-A", "config", "beat", "--schedule", schedule]
        self.beat = self.stack.start("beat", [*cmd, "--loglevel", "INFO"], self.env)

    def setup(self) -> None:
        from bench.chain import start_chain
        from tests.anthropic_stub import AnthropicStub

        self.redis_bin = shutil.which("redis-server")
        if self.redis_bin is None:
            raise StackError("the drills need redis-server on PATH (apt-get install redis-server)")
        self.step(f"database {DB_NAME}, own redis-server, anvil, stub ({STUB_LATENCY} s)")
        database_recreate(self.db_url)
        self.redis_port = free_port()
        self.redis_start()
        self.chain = start_chain(self.stack, state_path=Path(self.scratch) / "anvil.json")
        self.stub = AnthropicStub(latency=STUB_LATENCY, chunks=5).start()
        self.stub.when(FAIL_MARKER, "status:400")
        self.stack.on_close(self.stub.stop)
        broker = f"redis://127.0.0.1:{self.redis_port}/0"
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            {
                "DATABASE_URL": self.db_url,
                "CELERY_BROKER_URL": broker,
                "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
                "AI_BACKEND": "anthropic",
                "ANTHROPIC_API_KEY": "drills",
                "ANTHROPIC_BASE_URL": self.stub.base_url,
                "DEBUG": "false",
                "SECRET_KEY": SECRET_KEY,
                "ALLOWED_HOSTS": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
                **WORKER_SETTINGS,
                **self.chain.env(),
            }
        )
        self.env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        manage(env, "migrate", "--noinput", log_dir=self.stack.log_dir)
        django_setup(env)
        # Vendo logs each enqueue that fails while the broker is down (the reaper catches up):
        # count those here instead of printing their tracebacks.
        self.enqueue_failures = 0

        def count(record: logging.LogRecord) -> bool:
            if "on_commit" in record.getMessage():
                self.enqueue_failures += 1
                return False
            return True

        logging.getLogger("django.db.backends.base").addFilter(count)
        self.step("two workers and beat")
        self.workers: dict = {}
        for letter in "AB":
            self.worker_start(letter)
        for letter in "AB":
            workers.worker_ready(self.workers[letter], f"drill-{letter.lower()}@drills")
        schedule = os.path.join(self.scratch, "celerybeat-schedule")
        self.beat = self.stack.start(
            "beat",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--schedule",
                schedule,
                "--loglevel",
                "INFO",
            ],
            self.env,
        )
        self.skill = seed.skill("drill-writer", "1.333333", agent_slug="drill-agent")
        # A payout address nobody else uses, so its balance is the payouts' alone.
        from marketplace.models import Agent

        self.payout_address = Account.create().address
        Agent.objects.filter(pk=self.skill.agent_id).update(payout_address=self.payout_address)

    # -- the drill ---------------------------------------------------------------------------

    def faults(self, t0: float, stop: threading.Event, plan=FAULTS) -> None:
        for at, action in plan:
            while time.monotonic() < t0 + at:
                if stop.wait(0.05):
                    return
            what, target = action.split(" ", 1)
            if what == "hunt":
                action = self.hunt_broadcast(stop)
                self.events.append((round(time.monotonic() - t0, 2), action))
                self.step(f"  fault: {action}")
                continue
            with self.lock:
                if target == "chain":
                    down = self.chain.restart()
                    action = f"restart chain ({down:.1f} s down)"
                elif target == "redis":
                    self.redis.kill() if what == "kill" else self.redis_start()
                else:
                    letter = target[-1]
                    if what == "kill":
                        self.planned_down.add(letter)
                        self.workers[letter].kill()
                        self.caught_mid_broadcast += self.mid_broadcast()
                    else:
                        self.planned_down.discard(letter)
                        if not self.workers[letter].alive():  # the supervisor may have been first
                            self.worker_start(letter)
            self.events.append((round(time.monotonic() - t0, 2), action))
            self.step(f"  fault: {action}")

    def hunt_broadcast(self, stop: threading.Event, seconds: float = 20.0) -> str:
        """SIGKILL both workers the moment a transfer is signed, i.e. while its signer is
        broadcasting it and before it records the broadcast; start them again a second later."""
        from django.db import connection

        deadline = time.monotonic() + seconds
        with connection.cursor() as cursor:
            while time.monotonic() < deadline and not stop.is_set():
                cursor.execute("SELECT id FROM payments_onchaintransfer WHERE status = 'signed'")
                row = cursor.fetchone()
                if row:
                    break
                time.sleep(0.001)
            else:
                return "hunt broadcast: no transfer was signed"
        with self.lock:
            self.planned_down.update("AB")
            for letter in "AB":
                self.workers[letter].kill()
            self.caught_mid_broadcast += self.mid_broadcast()
        time.sleep(1.0)
        with self.lock:
            for letter in "AB":
                self.planned_down.discard(letter)
                if not self.workers[letter].alive():
                    self.worker_start(letter)
        return f"kill workers A and B while transfer {row[0]} was being broadcast; restarted"

    def mid_broadcast(self) -> int:
        """Count the dead worker's transfers signed but not recorded as sent (and, in the
        figures, those of them already on chain: broadcast, the record never made)."""
        from django.db import connections

        from payments.models import OnchainTransfer

        try:
            hashes = list(
                OnchainTransfer.objects.filter(status=OnchainTransfer.Status.SIGNED).values_list(
                    "tx_hash", flat=True
                )
            )
            for tx_hash in hashes:
                try:
                    self.chain.w3.eth.get_transaction_receipt(tx_hash)
                    self.caught_on_chain += 1
                except Exception:  # not mined yet, or never broadcast
                    pass
            return len(hashes)
        finally:
            connections.close_all()

    def supervise(self, t0: float, stop: threading.Event) -> None:
        """Restart a worker or beat that exits on its own a second later, like systemd's
        Restart=always or a PaaS would, and record the exit: it is a finding of its own."""
        while not stop.wait(0.2):
            with self.lock:
                procs = [(f"worker {k}", k, p) for k, p in self.workers.items()]
                procs.append(("beat", None, self.beat))
                dead = [
                    (label, proc)
                    for label, letter, proc in procs
                    if not proc.alive() and letter not in self.planned_down
                ]
                for label, proc in dead:
                    reason = exit_reason(proc)
                    self.unplanned.append((round(time.monotonic() - t0, 2), label, reason[:160]))
                    self.step(f"  unplanned exit: {label}: {reason[:100]}; restarting it")
            if not dead:
                continue
            time.sleep(1.0)  # RestartSec
            with self.lock:
                for letter, proc in self.workers.items():
                    if not proc.alive() and letter not in self.planned_down:
                        self.worker_start(letter)
                if not self.beat.alive():
                    self.beat_start()

    def run(self) -> dict:
        self.setup()
        from jobs.models import DeadLetter, Job, JobEvent

        self.step(f"ordering {JOBS} jobs, one in {FAIL_EVERY} refused by the model")
        refs = seed.jobs_create(
            self.skill,
            JOBS,
            prompt_for=lambda i: (
                f"{seed.PROMPT} ({i})" + (f" {FAIL_MARKER}" if i % FAIL_EVERY == 0 else "")
            ),
        )
        payers = {address: self.chain.balance(address) for address in BUYERS}
        self.step(f"paying them on chain and submitting the hashes, {RATE:g}/s, with faults")
        outcomes: Counter = Counter()
        errors: list[str] = []
        lock = threading.Lock()

        def submit(ref) -> None:
            from django.db import connections

            try:
                job = Job.objects.select_related("invoice").get(pk=ref.pk)
                outcome = seed.submit(job, ref).split(":")[0]
            except Exception as error:  # the broker is down: the payment committed first
                outcome = type(error).__name__
                with lock:
                    if len(errors) < 5:
                        errors.append(f"{ref.public_id}: {type(error).__name__}: {error}")
            finally:
                connections.close_all()
            with lock:
                outcomes[outcome] += 1

        stop, stop_supervisor = threading.Event(), threading.Event()
        t0 = time.monotonic()
        fault_thread = threading.Thread(target=self.faults, args=(t0, stop), daemon=True)
        fault_thread.start()
        supervisor = threading.Thread(
            target=self.supervise, args=(t0, stop_supervisor), daemon=True
        )
        supervisor.start()
        threads = []
        try:
            for i, ref in enumerate(refs):
                time.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
                # A buyer's transfer, then the buyer submits its hash (the watcher may be first).
                ref.tx_hash = self.chain.pay([ref.amount_units])[0]
                thread = threading.Thread(target=submit, args=(ref,), daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join(30)
            fault_thread.join(30)
        finally:
            stop.set()
        submitted_at = time.monotonic()
        self.step(f"submitted ({dict(outcomes)}); draining, while the money moves on")
        stop_settle_faults = threading.Event()
        settle_faults = threading.Thread(
            target=self.faults, args=(submitted_at, stop_settle_faults, SETTLE_FAULTS), daemon=True
        )
        settle_faults.start()
        pks = [ref.pk for ref in refs]
        final = [Job.Status.COMPLETED, Job.Status.FAILED]
        deadline = submitted_at + DRAIN_TIMEOUT
        left = JOBS
        while time.monotonic() < deadline:
            left = Job.objects.filter(pk__in=pks).exclude(status__in=final).count()
            if not left:
                break
            time.sleep(0.5)
        drained = time.monotonic()
        last_fault = t0 + FAULTS[-1][0]
        # Let late duplicates run, so a double completion would show: Redis hands a dead worker's
        # unacknowledged messages out again once the visibility timeout has passed.
        last_kill = max(at for at, action in FAULTS if action.startswith("kill worker"))
        redelivered_by = t0 + last_kill + int(WORKER_SETTINGS["CELERY_VISIBILITY_TIMEOUT"]) + 3
        time.sleep(max(3.0, redelivered_by - time.monotonic()))
        settle_faults.join(30)
        self.step("jobs drained; waiting for refunds and payouts to settle")
        settled = self.money_settled(submitted_at + SETTLE_TIMEOUT)
        stop_supervisor.set()
        supervisor.join(5)
        money = self.money_proof(payers)
        logs = "".join(
            path.read_text(errors="replace") for path in self.stack.log_dir.glob("worker-*.log")
        )
        reaped = sum(int(n) for n in re.findall(r"Reaper queued (\d+) job", logs))
        received = len(re.findall(r"Task jobs\.run_generation\[[^]]+\] received", logs))

        rows = list(Job.objects.filter(pk__in=pks).values("pk", "status", "deliveries", "attempts"))
        statuses = Counter(row["status"] for row in rows)
        success = Counter(
            JobEvent.objects.filter(job_id__in=pks, kind=JobEvent.Kind.SUCCESS).values_list(
                "job_id", flat=True
            )
        )
        resumed = JobEvent.objects.filter(
            job_id__in=pks, kind=JobEvent.Kind.PROCESSING, message__startswith="Resumed"
        ).count()
        lost = [row["pk"] for row in rows if row["status"] not in final]
        twice = [pk for pk, n in success.items() if n > 1]
        results = {
            "jobs": JOBS,
            "rate_per_s": RATE,
            "faults": self.events,
            "submissions": dict(outcomes),
            "submission_errors": errors,
            "statuses": dict(statuses),
            "lost": len(lost),
            "lost_ids": lost[:20],
            "completed_twice": len(twice),
            "completed_twice_ids": twice[:20],
            "dead_letters": DeadLetter.objects.filter(job_id__in=pks).count(),
            "failed": statuses.get(Job.Status.FAILED, 0),
            "model_calls": len(self.stub.requests),
            "generation_messages_received": received,
            "enqueue_failures_logged": self.enqueue_failures,
            "reaper_requeues": reaped,
            "unplanned_exits": self.unplanned,
            "resumed_after_worker_death": resumed,
            "deliveries_total": sum(row["deliveries"] for row in rows),
            "drain_seconds_after_last_payment": round(drained - submitted_at, 1)
            if not left
            else None,
            "drain_seconds_after_last_fault": round(drained - last_fault, 1) if not left else None,
            "drain_timeout_s": DRAIN_TIMEOUT,
            "money_settled": settled,
            "transfers_caught_mid_broadcast": self.caught_mid_broadcast,
            "transfers_caught_already_on_chain": self.caught_on_chain,
            **money,
        }
        return results

    def money_settled(self, deadline: float) -> bool:
        """Wait until every refund and payout is confirmed and every share released and paid."""
        from payments.models import Invoice, OnchainTransfer

        while time.monotonic() < deadline:
            moving = OnchainTransfer.objects.filter(
                status__in=OnchainTransfer.OPEN_STATUSES
            ).exists()
            unreleased = Invoice.objects.filter(
                settled_at__isnull=False, agent__isnull=False, released_at__isnull=True
            ).exists()
            unpaid = self.payable() >= 500_000
            if not (moving or unreleased or unpaid):
                return True
            time.sleep(1.0)
        return False

    def payable(self) -> int:
        from payments.models import Account
        from payments.services.ledger import Ref, balance

        return balance(Ref.of(Account.AGENT_PAYABLE, self.skill.agent_id))

    def money_proof(self, payers: dict[str, int]) -> dict:
        """Prove where every unit went, reading balances on the chain."""
        from django.db.models import Sum

        from payments.models import Account, Invoice, OnchainTransfer, Payment
        from payments.services.ledger import Ref, balance
        from payments.services.reconciliation import ledger_reconcile

        report = ledger_reconcile()
        confirmed = OnchainTransfer.objects.filter(status=OnchainTransfer.Status.CONFIRMED)
        mismatched = []
        for address, before in payers.items():
            paid = (
                Payment.objects.counted()
                .filter(from_address=address)
                .aggregate(total=Sum("amount_units"))["total"]
                or 0
            )
            refunded = (
                confirmed.filter(to_address=address).aggregate(total=Sum("amount_units"))["total"]
                or 0
            )
            expected = before - int(paid) + int(refunded)
            if self.chain.balance(address) != expected:
                mismatched.append((address, self.chain.balance(address), expected))
        paid_out = (
            confirmed.filter(to_address=self.payout_address).aggregate(total=Sum("amount_units"))[
                "total"
            ]
            or 0
        )
        agent = self.skill.agent_id
        still_owed = balance(Ref.of(Account.AGENT_HELD, agent)) + self.payable()
        shares = Invoice.objects.filter(agent_id=agent).aggregate(total=Sum("share_units"))
        payout_balance = self.chain.balance(self.payout_address)
        # What left the platform's wallet on chain, against what the books sent.
        sent = self.chain.transfers_from(self.chain.recipient)
        ours = {t.tx_hash.lower(): t for t in OnchainTransfer.objects.exclude(tx_hash="")}
        by_hash = Counter(tx_hash for tx_hash, _, _ in sent)
        twice = [tx_hash for tx_hash, n in by_hash.items() if n > 1]
        strangers = [tx_hash for tx_hash in by_hash if tx_hash not in ours]
        sent_units = sum(amount for _, _, amount in sent)
        return {
            "ledger_check": "passes" if report.ok else report.problems,
            "payers_checked": len(payers),
            "payer_balance_mismatches": mismatched,
            "payout_balance_on_chain": payout_balance,
            "payouts_confirmed_units": int(paid_out),
            "agent_shares_units": int(shares["total"] or 0),
            "agent_still_owed_units": still_owed,
            "refunds_confirmed": confirmed.filter(kind=OnchainTransfer.Kind.REFUND).count(),
            "payouts_confirmed": confirmed.filter(kind=OnchainTransfer.Kind.PAYOUT).count(),
            "transfers_sent_on_chain": len(sent),
            "transfers_sent_twice": len(twice),
            "transfers_unknown_to_the_books": len(strangers),
            "units_sent_on_chain": sent_units,
            "units_sent_in_the_books": int(
                confirmed.aggregate(total=Sum("amount_units"))["total"] or 0
            ),
        }


def money_ok(results: dict) -> dict[str, bool]:
    return {
        "settled": results["money_settled"],
        "ledger": results["ledger_check"] == "passes",
        "payers": not results["payer_balance_mismatches"],
        "payout": results["payout_balance_on_chain"] == results["payouts_confirmed_units"]
        and results["payouts_confirmed_units"] + results["agent_still_owed_units"]
        == results["agent_shares_units"],
        "once": results["transfers_sent_twice"] == 0
        and results["transfers_unknown_to_the_books"] == 0
        and results["units_sent_on_chain"] == results["units_sent_in_the_books"],
    }


def report(results: dict) -> str:
    ok_lost = results["lost"] == 0
    ok_twice = results["completed_twice"] == 0
    ok = money_ok(results)
    drain = results["drain_seconds_after_last_payment"]
    rows = [
        ("jobs paid on chain", results["jobs"], "", ""),
        ("jobs lost (paid, not completed/failed)", results["lost"], "0", stats.verdict(ok_lost)),
        (
            "jobs completed twice (>1 success event)",
            results["completed_twice"],
            "0",
            stats.verdict(ok_twice),
        ),
        ("jobs failed (refund due)", results["failed"], "", ""),
        ("dead letters", results["dead_letters"], "", ""),
        ("final statuses", results["statuses"], "", ""),
        ("payment submissions", results["submissions"], "", ""),
        ("model calls (stub requests)", results["model_calls"], "", ""),
        (
            "enqueues failed (broker down) / reaper re-queues",
            f"{results['enqueue_failures_logged']} / {results['reaper_requeues']}",
            "",
            "",
        ),
        ("generation messages received", results["generation_messages_received"], "", ""),
        (
            "processes that exited on their own (restarted)",
            len(results["unplanned_exits"]),
            "0",
            "" if not results["unplanned_exits"] else "!",
        ),
        (
            "claims (deliveries) / resumed after a death",
            f"{results['deliveries_total']} / {results['resumed_after_worker_death']}",
            "",
            "",
        ),
        (
            "time to drain after the last payment",
            "not drained" if drain is None else f"{drain} s",
            f"<= {results['drain_timeout_s']:g} s",
            "",
        ),
        (
            "time to drain after the last fault",
            "n/a" if drain is None else f"{results['drain_seconds_after_last_fault']} s",
            "",
            "",
        ),
    ]
    rows += [
        ("refunds / payouts confirmed on chain",
         f"{results['refunds_confirmed']} / {results['payouts_confirmed']}", "", ""),
        ("money settled (no transfer in flight)", results["money_settled"], "True",
         stats.verdict(ok["settled"])),
        ("ledger_check", results["ledger_check"], "passes", stats.verdict(ok["ledger"])),
        (f"payers whose chain balance != the books ({results['payers_checked']} checked)",
         len(results["payer_balance_mismatches"]), "0", stats.verdict(ok["payers"])),
        ("payout address on chain / payouts confirmed / shares earned / still owed",
         f"{results['payout_balance_on_chain']} / {results['payouts_confirmed_units']} / "
         f"{results['agent_shares_units']} / {results['agent_still_owed_units']}",
         "equal; paid + owed = earned", stats.verdict(ok["payout"])),
        ("transfers out on chain: sent twice / unknown to the books",
         f"{results['transfers_sent_twice']} / {results['transfers_unknown_to_the_books']}",
         "0 / 0", stats.verdict(ok["once"])),
        ("units out on chain / in the books",
         f"{results['units_sent_on_chain']} / {results['units_sent_in_the_books']}", "equal", ""),
        ("transfers signed, not recorded as sent, when a kill landed (already on chain)",
         f"{results['transfers_caught_mid_broadcast']} "
         f"({results['transfers_caught_already_on_chain']})", ">= 1", ""),
    ]  # fmt: skip
    faults = "; ".join(f"{action} at {at:g} s" for at, action in results["faults"])
    rows.insert(1, (f"  faults: {faults}",))
    for at, label, reason in results["unplanned_exits"]:
        rows.append((f"  ! {label} exited at {at:g} s: {reason}",))
    return stats.table(rows, ("drill", "value", "target", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drills", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    args = parser.parse_args(argv)
    terminate_on_signals()
    try:
        database_url, _ = services_from_env(broker_needed=False)  # the drill runs its own Redis
    except StackError as error:
        print(f"drills: {error}", file=sys.stderr)
        return 2
    db_url = with_database(database_url, DB_NAME)
    stack = Stack(ROOT / "var" / "drills")
    began = time.monotonic()
    drill = Drill(stack, db_url)
    try:
        results = drill.run()
    except StackError as error:
        print(f"drills: {error}\n(logs in {stack.log_dir})", file=sys.stderr)
        return 1
    finally:
        stack.close()
        if not args.keep_db:
            database_drop(db_url)
    results["run_seconds"] = round(time.monotonic() - began, 1)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print()
    print(report(results))
    failed = results["lost"] or results["completed_twice"] or not all(money_ok(results).values())
    print(
        f"\n{'FAIL' if failed else 'OK'}; run time {results['run_seconds']} s. "
        "Figures in var/drills.json, logs in var/drills/."
    )
    (ROOT / "var" / "drills.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
