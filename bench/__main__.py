"""`make bench`: Vendo on the real stack, beside raw Celery and a one-query Django view.

Starts its own anvil (TestUSDC), Anthropic stub (1 s per answer), Celery workers and gunicorn,
on a database of its own (vendo_bench) and Redis db 11, and measures:

1. payment confirmed (Job.paid_at) -> generation started (Job.started_at) at 20 jobs/s;
2. jobs/s completed with 100 jobs in flight, against the ideal 100 / 1 s;
3. the generation worker's CPU per job (the stub is another process);
4. the pay endpoint and the job page: p50/p99 unloaded and requests/s at 32 clients, beside a
   one-query view served by the same gunicorn;
5. the same queue path with a no-op Celery task (latency, 1 s tasks at 100 in flight);
6. the queries the catalog and job pages make with 10 and with 1,000 skills.

Prints a table and writes the same figures to var/bench.json. Logs go to var/bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime

from bench import loadgen, profile, report, seed, stats, workers
from bench.stack import (
    CLK_TCK,
    PYTHON,
    ROOT,
    Stack,
    StackError,
    command_cpu,
    cpu_times,
    database_drop,
    database_recreate,
    django_setup,
    free_port,
    machine_cpu,
    manage,
    pg_max_connections,
    port_open,
    processes_cpu,
    redis_flush,
    services_from_env,
    terminate_on_signals,
    top_cpu,
    wait_for,
    with_database,
    with_redis_db,
)

DB_NAME = "vendo_bench"
REDIS_DB = 11
STUB_LATENCY = 1.0
CONCURRENCY = 100
IDEAL_JOBS_PER_SECOND = CONCURRENCY / STUB_LATENCY
SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
VENDO_WORKER = "vendo-bench@bench"
NOOP_WORKER = "noop-bench@bench"
GUNICORN = ["--workers", "4", "--worker-class", "gthread", "--threads", "4"]


def git_head() -> str:
    """The commit measured, with "+changes" if tracked files differ from it."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return run.stdout.strip() if run.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def worker_errors(procs) -> dict:
    """Tasks that raised unexpectedly, by the exception's last line, from the workers' logs."""
    errors: Counter = Counter()
    for proc in procs:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if "raised unexpected:" in line:
                errors[line.split("raised unexpected:", 1)[1].strip()[:120]] += 1
    return dict(errors)


def _round(value, digits: int = 2):
    return None if value is None else round(value, digits)


class Bench:
    def __init__(
        self,
        stack: Stack,
        db_url: str,
        broker: str,
        scale: float,
        profiling: bool = False,
        worker_processes: int = 1,
    ) -> None:
        self.stack, self.db_url, self.broker, self.scale = stack, db_url, broker, scale
        self.profiling = profiling
        self.worker_processes = worker_processes
        self.results: dict = {"phases": {}}
        self.began = time.monotonic()
        self.static_dir = tempfile.mkdtemp(prefix="vendo-bench-static-")
        stack.on_close(lambda: shutil.rmtree(self.static_dir, ignore_errors=True))

    def recording(self, name: str, pid: int, subprocesses: bool = False, gil: bool = False):
        """py-spy the process while the block runs, if --profile was given."""
        if not self.profiling:
            return contextlib.nullcontext()
        out = self.stack.log_dir / f"profile-{name}.folded"
        return profile.recording(out, pid, subprocesses=subprocesses, gil=gil)

    def n(self, count: int) -> int:
        return max(10, int(count * self.scale))

    def step(self, message: str) -> None:
        print(f"[{time.monotonic() - self.began:6.1f}s] {message}", flush=True)

    # -- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        from bench.chain import start_chain

        self.step(f"database {DB_NAME}, redis db {REDIS_DB}, anvil, stub")
        database_recreate(self.db_url)
        redis_flush(self.broker)
        self.chain = start_chain(self.stack)
        stub_port = free_port()
        base = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        base.update(
            {
                "DATABASE_URL": self.db_url,
                "CELERY_BROKER_URL": self.broker,
                # Shared by every process, as in production (rate limits count there).
                "CACHE_URL": with_redis_db(self.broker, 15),
                "AI_BACKEND": "anthropic",
                "ANTHROPIC_API_KEY": "bench",
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{stub_port}",
                "SECRET_KEY": SECRET_KEY,
                "ALLOWED_HOSTS": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
                **self.chain.env(),
            }
        )
        self.base_env = base
        # Production-like processes: DEBUG off (no query log, no DEBUG-only paths).
        production = {**base, "DEBUG": "false"}
        self.worker_env = {**production, "DJANGO_SETTINGS_MODULE": "config.settings"}
        self.web_env = {
            **production,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_STATIC_ROOT": self.static_dir,
            # The load generator is one client posting hundreds of hashes: the limit still
            # counts every POST (its cost is measured) but never refuses one.
            "RATE_LIMIT_PAYMENT_SUBMIT": "1000000/s",
        }
        stub_cmd = [PYTHON, "tests/anthropic_stub.py", "--port", str(stub_port)]
        self.stub = self.stack.start("stub", [*stub_cmd, "--latency", str(STUB_LATENCY)], base)
        manage(base, "migrate", "--noinput", log_dir=self.stack.log_dir)
        wait_for(lambda: port_open(stub_port), timeout=20, what="the stub", proc=self.stub)
        django_setup(base)
        self.results["environment"] = {
            "commit": git_head(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "pg_max_connections": pg_max_connections(self.db_url),
            "stub_latency_s": STUB_LATENCY,
            "concurrency": CONCURRENCY,
            "worker": f"celery -A config worker --pool threads --concurrency {CONCURRENCY}"
            if self.worker_processes == 1
            else f"{self.worker_processes} x celery -A config worker --pool threads "
            f"--concurrency {CONCURRENCY // self.worker_processes}",
            "gunicorn": "bench.wsgi " + " ".join(GUNICORN),
            "scale": self.scale,
        }
        self.skills = {
            name: seed.skill(f"bench-{name}", price)
            for name, price in (
                ("warmup", "0.500000"),
                ("latency", "1.000000"),
                ("throughput", "2.000000"),
                ("pages", "3.000000"),
            )
        }
        self.step("Vendo worker")
        self.worker = workers.WorkerGroup(
            self.stack,
            self.worker_env,
            name=VENDO_WORKER,
            processes=self.worker_processes,
            concurrency=CONCURRENCY,
            log="worker",
        )
        self.worker.ready()
        refs = self.paid_jobs("warmup", 20)
        self.wait_final(refs, timeout=60)

    # -- helpers -----------------------------------------------------------------------------

    def paid_jobs(self, skill: str, count: int, rate: float | None = None):
        """Order `count` jobs, pay each on chain and submit the hashes; return the jobs."""
        refs = seed.jobs_create(self.skills[skill], count)
        seed.transfers_make(self.chain, refs)
        submitted = seed.payments_submit(refs, rate=rate)
        self.check_submitted(submitted)
        return refs

    @staticmethod
    def check_submitted(submitted) -> None:
        bad = [s for s in submitted if s.outcome != "confirmed"]
        if bad:
            first = bad[0]
            raise StackError(
                f"{len(bad)} payment(s) not confirmed, e.g. {first.ref.public_id}: {first.outcome}"
            )

    def wait_final(self, refs, *, timeout: float, stall: float = 20.0, sample=None) -> int:
        """Wait until every job is completed or failed; return how many are not.

        Gives up after `timeout`, or once nothing has moved for `stall` seconds (a job whose
        task failed stays paid until a reaper queues it again, and none runs in the bench).
        The driver keeps its one database connection open throughout, like a web server would.
        """
        from jobs.models import Job

        pks = [ref.pk for ref in refs]
        final = [Job.Status.COMPLETED, Job.Status.FAILED]
        deadline = time.monotonic() + timeout
        last_left, moved_at = None, time.monotonic()
        while True:
            left = Job.objects.filter(pk__in=pks).exclude(status__in=final).count()
            if sample:
                sample(left)
            if not left:
                return 0
            if left != last_left:
                last_left, moved_at = left, time.monotonic()
            now = time.monotonic()
            if now > deadline or now - moved_at > stall:
                self.step(f"   {left} of {len(pks)} jobs unfinished; going on without them")
                return left
            if not self.worker.alive():
                raise StackError(f"the worker died:\n{self.worker.tail()}")
            time.sleep(0.25)

    @staticmethod
    def job_rows(refs):
        from jobs.models import Job

        return list(
            Job.objects.filter(pk__in=[ref.pk for ref in refs]).values(
                "pk", "status", "paid_at", "started_at", "completed_at", "attempts", "deliveries"
            )
        )

    # -- 1. payment -> start at 20 jobs/s ----------------------------------------------------

    def latency(self) -> None:
        count = self.n(400)
        rate = 20.0
        self.step(f"1. payment -> start: {count} jobs paid at {rate:.0f}/s")
        refs = seed.jobs_create(self.skills["latency"], count)
        seed.transfers_make(self.chain, refs)
        cpu0 = self.worker.cpu_seconds()
        submitted = seed.payments_submit(refs, rate=rate, threads=6)
        self.check_submitted(submitted)
        unfinished = self.wait_final(refs, timeout=120)
        cpu = self.worker.cpu_seconds() - cpu0
        rows = self.job_rows(refs)
        ran = sum(r["started_at"] is not None for r in rows)
        delays = [
            (r["started_at"] - r["paid_at"]).total_seconds() * 1000
            for r in rows
            if r["started_at"] and r["paid_at"]
        ]
        span = max(s.started for s in submitted) - min(s.started for s in submitted)
        lags = [(s.started - s.scheduled) * 1000 for s in submitted]
        self.latency_refs = refs
        self.results["phases"]["paid_to_start"] = {
            "jobs": count,
            "rate_target_per_s": rate,
            "rate_achieved_per_s": round((len(submitted) - 1) / span, 2) if span else None,
            "submission_lag_p99_ms": round(stats.percentile(lags, 99), 1),
            "payment_submit_p50_ms": round(
                stats.percentile([s.seconds * 1000 for s in submitted], 50), 1
            ),
            "p50_ms": round(stats.percentile(delays, 50), 2),
            "p99_ms": round(stats.percentile(delays, 99), 2),
            "max_ms": round(max(delays), 2),
            "completed": sum(r["status"] == "completed" for r in rows),
            "unfinished": unfinished,
            "worker_cpu_ms_per_job": round(cpu * 1000 / max(ran, 1), 2),
        }

    # -- 2 and 3. throughput with 100 in flight, CPU per job ---------------------------------

    def throughput(self) -> None:
        count = self.n(1000)
        self.step(
            f"2. throughput: {count} paid jobs queued, then consumed by {CONCURRENCY} threads"
        )
        refs = seed.jobs_create(self.skills["throughput"], count)
        seed.transfers_make(self.chain, refs)
        self.throughput_refs = refs
        self.worker.consumer("generation", on=False)
        submitted = seed.payments_submit(refs, threads=4)
        self.check_submitted(submitted)
        connections_peak = [0]

        def counters():
            return {
                "worker": self.worker.cpu_times(),
                "stub": self.stub.cpu_seconds(),
                "postgres": command_cpu("postgres"),
                "redis": command_cpu("redis-server"),
                "driver": sum(cpu_times(os.getpid())),
                "machine": machine_cpu(),
                "processes": processes_cpu(),
            }

        # CPU counters as they were when the last job finished (not after a stall, if any).
        at_end: dict = {}

        def sample(left: int) -> None:
            # Counted from /proc (a query would take a connection slot itself).
            connections_peak[0] = max(connections_peak[0], self.worker.tcp_connections(5432))
            if at_end.get("left") != left:
                at_end.update(counters(), left=left)

        start = counters()
        with self.recording("worker", self.worker.pids[0], gil=True):
            self.worker.consumer("generation", on=True)
            unfinished = self.wait_final(refs, timeout=180, sample=sample)
        (user0, sys0), (user1, sys1) = start["worker"], at_end["worker"]
        cpu = (user1 - user0) + (sys1 - sys0)
        stub_cpu = at_end["stub"] - start["stub"]
        pg_cpu = at_end["postgres"] - start["postgres"]
        redis_cpu = at_end["redis"] - start["redis"]
        driver_cpu = at_end["driver"] - start["driver"]
        (busy0, total0), (busy1, total1) = start["machine"], at_end["machine"]
        rows = [r for r in self.job_rows(refs) if r["completed_at"]]
        done = len(rows)
        first = min(r["started_at"] for r in rows)
        last = max(r["completed_at"] for r in rows)
        makespan = (last - first).total_seconds()
        busy = sum((r["completed_at"] - r["started_at"]).total_seconds() for r in rows)
        rate = done / makespan
        self.results["phases"]["throughput"] = {
            "jobs": count,
            "seconds": round(makespan, 2),
            "jobs_per_s": round(rate, 2),
            "ideal_jobs_per_s": IDEAL_JOBS_PER_SECOND,
            "vs_ideal": round(rate / IDEAL_JOBS_PER_SECOND, 3),
            "mean_in_flight": round(busy / makespan, 1),
            "mean_job_seconds": round(busy / done, 3),
            "completed": done,
            "unfinished": unfinished,
            "worker_task_errors": worker_errors(self.worker.procs),
            "db_connections_peak": connections_peak[0],
            # All CPUs of the machine, busy over the phase, from /proc/stat. On this VM it reads
            # about 10 ms/job more than every live process together (see top_cpu_ms_per_job).
            "machine_cpu_busy": round((busy1 - busy0) / max(total1 - total0, 1), 3),
            "stub_cpu_ms_per_job": round(stub_cpu * 1000 / done, 2),
            # Every PostgreSQL and Redis process on the machine (others' too, if any run).
            "postgres_cpu_ms_per_job": round(pg_cpu * 1000 / done, 2),
            "redis_cpu_ms_per_job": round(redis_cpu * 1000 / done, 2),
            "driver_cpu_ms_per_job": round(driver_cpu * 1000 / done, 2),
            # Per command name, over the phase: who else used the machine's CPUs.
            "top_cpu_ms_per_job": {
                name: round(cpu * 1000 / done, 2)
                for name, cpu in top_cpu(start["processes"], at_end["processes"])
            },
            "machine_cpu_ms_per_job": round((busy1 - busy0) / CLK_TCK * 1000 / done, 2),
        }
        self.results["phases"]["cpu"] = {
            "jobs": count,
            "worker_cpu_s": round(cpu, 2),
            "ms_per_job": round(cpu * 1000 / done, 2),
            "user_ms_per_job": round((user1 - user0) * 1000 / done, 2),
            "system_ms_per_job": round((sys1 - sys0) * 1000 / done, 2),
        }

    # -- 5. the no-op Celery baseline ---------------------------------------------------------

    def noop_baseline(self) -> None:
        import redis

        from bench.celery_app import QUEUE, RESULTS_KEY, noop

        self.step("5. raw Celery baseline: bench.noop on its own worker")
        self.worker.stop()
        proc = workers.worker_start(
            self.stack,
            self.worker_env,
            app="bench.celery_app",
            name=NOOP_WORKER,
            queues=QUEUE,
            concurrency=CONCURRENCY,
            log="noop-worker",
        )
        workers.worker_ready(proc, NOOP_WORKER)
        client = redis.Redis.from_url(self.broker)

        def collect(count: int, timeout: float) -> list[tuple[float, float, float]]:
            deadline = time.monotonic() + timeout
            while client.llen(RESULTS_KEY) < count:
                if time.monotonic() > deadline or not proc.alive():
                    raise StackError(f"no-op tasks unfinished:\n{proc.tail()}")
                time.sleep(0.1)
            rows = [tuple(map(float, r.split())) for r in client.lrange(RESULTS_KEY, 0, -1)]
            client.delete(RESULTS_KEY)
            return rows

        def burst(count: int, sleep: float) -> tuple[float, float]:
            workers.consumer(NOOP_WORKER, QUEUE, on=False)
            for _ in range(count):
                noop.apply_async(args=[time.time()], kwargs={"sleep": sleep}, queue=QUEUE)
            cpu0 = proc.cpu_seconds()
            workers.consumer(NOOP_WORKER, QUEUE, on=True)
            rows = collect(count, timeout=120)
            cpu = proc.cpu_seconds() - cpu0
            span = max(r[2] for r in rows) - min(r[1] for r in rows)
            return count / span, cpu

        # Warm up the threads, then the latency at 20/s.
        for _ in range(20):
            noop.apply_async(args=[time.time()], queue=QUEUE)
        collect(20, timeout=30)
        count = self.n(200)
        start = time.time() + 0.1
        for i in range(count):
            time.sleep(max(0.0, start + i / 20.0 - time.time()))
            noop.apply_async(args=[time.time()], queue=QUEUE)
        rows = collect(count, timeout=30)
        delays = [(started - sent) * 1000 for sent, started, _ in rows]
        sleepers = self.n(1000)
        io_rate, io_cpu = burst(sleepers, STUB_LATENCY)
        raw = self.n(2000)
        raw_rate, _ = burst(raw, 0.0)
        proc.stop()
        client.close()
        self.results["phases"]["noop"] = {
            "latency_tasks": count,
            "enqueue_to_start_p50_ms": round(stats.percentile(delays, 50), 2),
            "enqueue_to_start_p99_ms": round(stats.percentile(delays, 99), 2),
            "sleep_tasks": sleepers,
            "sleep_task_seconds": STUB_LATENCY,
            "sleep_jobs_per_s": round(io_rate, 2),
            "sleep_vs_ideal": round(io_rate / IDEAL_JOBS_PER_SECOND, 3),
            "worker_cpu_ms_per_task": round(io_cpu * 1000 / sleepers, 2),
            "noop_tasks": raw,
            "noop_jobs_per_s": round(raw_rate, 1),
        }

    # -- 4. pages ----------------------------------------------------------------------------

    def pages(self) -> None:
        from jobs.services import job_create

        unloaded_pays, loaded_pays = self.n(150), self.n(1200)
        total = unloaded_pays + loaded_pays + 5 + 32
        self.step(f"4. pages: ordering {total} jobs to pay over HTTP")
        refs = seed.jobs_create(self.skills["pages"], total)
        seed.transfers_make(self.chain, refs)
        open_job = job_create(skill=self.skills["pages"], prompt=seed.PROMPT, browser_token="b")
        completed = self.latency_refs[len(self.latency_refs) // 2]
        self.step("4. pages: collectstatic, gunicorn")
        manage(self.web_env, "collectstatic", "--noinput", log_dir=self.stack.log_dir)
        port = free_port()
        web = self.stack.start(
            "gunicorn",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "bench.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                *GUNICORN,
                "--log-level",
                "warning",
            ],
            self.web_env,
        )
        wait_for(lambda: port_open(port), timeout=30, what="gunicorn", proc=web)
        load_seconds = 6.0
        measured = {}

        def paths(job_refs):
            return [{"path": f"/jobs/{ref.public_id}/"} for ref in job_refs]

        def split(requests):
            """The first quarter (at most 300) for the unloaded runs, the rest for the loaded."""
            cut = min(300, len(requests) // 4)
            return requests[:cut], requests[cut:]

        # A page viewed again (one URL) hits the per-process caches (QR code, rendered result);
        # a first view (each request another job) does not.
        done = self.latency_refs + self.throughput_refs
        pages = [
            ("baseline", [{"path": "/bench/baseline/"}], None),
            ("job_page_completed", [{"path": f"/jobs/{completed.public_id}/"}], None),
            ("job_page_completed_first_view", *split(paths(done))),
            ("job_page_awaiting_payment", [{"path": f"/jobs/{open_job.public_id}/"}], None),
            ("job_page_awaiting_payment_first_view", *split(paths(refs))),
        ]
        for label, unloaded_requests, loaded_requests in pages:
            self.step(f"4. {label}: unloaded, then 32 clients")
            unloaded = self.unloaded(port, unloaded_requests)
            cpu0 = web.tree_cpu_seconds()
            with self.recording(f"gunicorn-{label}", web.pid, subprocesses=True):
                if loaded_requests is None:  # the same URL again and again
                    loaded = loadgen.run(
                        port=port,
                        requests=unloaded_requests,
                        clients=32,
                        processes=2,
                        cycle=True,
                        duration=load_seconds,
                        warmup=unloaded_requests * 2,
                    )
                else:  # each URL once, until they or the time run out
                    loaded = loadgen.run(
                        port=port,
                        requests=loaded_requests,
                        clients=32,
                        processes=2,
                        duration=load_seconds,
                        warmup=[{"path": "/bench/baseline/"}] * 2,
                    )
            cpu = web.tree_cpu_seconds() - cpu0
            measured[label] = self.page_figures(unloaded, loaded, cpu)
        self.step("4. pay endpoint: unloaded, then 32 clients (each POST pays a fresh job)")

        def post(ref):
            return {
                "method": "POST",
                "path": f"/jobs/{ref.public_id}/payments",
                "body": f"tx_hash={ref.tx_hash}",
            }

        # Warm-up: resubmitting a paid job's hash (idempotent: same checks, nothing changes) and
        # one fresh payment per connection, so each worker process has its chain client and
        # broker connection before the measured POSTs.
        resubmits = [post(ref) for ref in self.latency_refs[:5]]
        fresh = [post(ref) for ref in refs[: 5 + 32]]
        posts = [post(ref) for ref in refs[5 + 32 :]]
        csrf = f"/jobs/{open_job.public_id}/"
        unloaded = loadgen.run(
            port=port,
            requests=posts[:unloaded_pays],
            clients=1,
            duration=120,
            csrf_path=csrf,
            expect=(302,),
            warmup=resubmits + fresh[:5],
        )
        cpu0 = web.tree_cpu_seconds()
        with self.recording("gunicorn-pay_endpoint", web.pid, subprocesses=True):
            loaded = loadgen.run(
                port=port,
                requests=posts[unloaded_pays:],
                clients=32,
                processes=2,
                duration=load_seconds,
                csrf_path=csrf,
                expect=(302,),
                warmup=fresh[5:],
                warmup_split=True,
            )
        cpu = web.tree_cpu_seconds() - cpu0
        measured["pay_endpoint"] = self.page_figures(unloaded, loaded, cpu)
        from jobs.models import Job

        posted = unloaded["count"] + loaded["count"] + len(fresh)
        # Nothing else pays these jobs (no chain watcher runs in the bench): every paid one was
        # paid by a POST.
        paid = Job.objects.filter(pk__in=[ref.pk for ref in refs], paid_at__isnull=False).count()
        measured["pay_endpoint"]["jobs_paid_by_posts"] = paid
        measured["pay_endpoint"]["posts"] = posted
        web.stop()
        self.results["phases"]["pages"] = measured

    @staticmethod
    def unloaded(port: int, requests: list[dict]) -> dict:
        """One client, one request at a time: three connections of 100 requests each (each
        connection may land on another gunicorn worker), each after 20 warm-up requests.

        One request given: that URL 100 times per connection; more: a third of them each.
        """
        if len(requests) == 1:
            parts = [requests * 100] * 3
            warmup = requests * 20
        else:
            size = -(-len(requests) // 3)
            parts = [requests[i * size : (i + 1) * size] for i in range(3)]
            warmup = [{"path": "/bench/baseline/"}] * 20
        runs = [
            loadgen.run(port=port, requests=part, clients=1, duration=8, warmup=warmup)
            for part in parts
            if part
        ]
        merged = dict(runs[0])
        merged["latencies_ms"] = [ms for run in runs for ms in run["latencies_ms"]]
        merged["count"] = len(merged["latencies_ms"])
        merged["statuses"] = {}
        for run in runs:
            for status, n in run["statuses"].items():
                merged["statuses"][status] = merged["statuses"].get(status, 0) + n
        merged["errors"] = [e for run in runs for e in run["errors"]]
        merged["p50_per_connection_ms"] = [
            _round(stats.percentile(run["latencies_ms"], 50)) for run in runs
        ]
        return merged

    @staticmethod
    def page_figures(unloaded: dict, loaded: dict, server_cpu: float) -> dict:
        def summary(run):
            return {
                **(
                    {"p50_per_connection_ms": run["p50_per_connection_ms"]}
                    if "p50_per_connection_ms" in run
                    else {}
                ),
                "requests": run["count"],
                "p50_ms": _round(stats.percentile(run["latencies_ms"], 50)),
                "p99_ms": _round(stats.percentile(run["latencies_ms"], 99)),
                "statuses": run["statuses"],
                "errors": run["errors"],
            }

        return {
            "unloaded": summary(unloaded),
            "loaded_32": {
                **summary(loaded),
                "seconds": round(loaded["seconds"], 2),
                "rps": round(loaded["rps"], 1),
                # gunicorn's CPU over the loaded run (warm-up included) per measured request.
                "server_cpu_ms_per_request": round(server_cpu * 1000 / max(loaded["count"], 1), 2),
            },
        }

    # -- 6. query counts ---------------------------------------------------------------------

    def queries(self) -> None:
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        self.step("6. query counts with 10 and 1,000 skills")
        client = Client()
        completed = self.latency_refs[0]
        from jobs.services import job_create

        open_job = job_create(skill=self.skills["pages"], prompt=seed.PROMPT, browser_token="q")
        paths = {
            "catalog": "/",
            "job_page_completed": f"/jobs/{completed.public_id}/",
            "job_page_awaiting_payment": f"/jobs/{open_job.public_id}/",
        }
        counts: dict = {}
        for skills in (10, 1000):
            listed = seed.catalog_fill(skills)
            for label, path in paths.items():
                client.get(path, secure=True, HTTP_HOST="127.0.0.1")  # warm caches
                with CaptureQueriesContext(connection) as ctx:
                    response = client.get(path, secure=True, HTTP_HOST="127.0.0.1")
                if response.status_code != 200:
                    raise StackError(f"GET {path} answered {response.status_code}")
                counts.setdefault(label, {})[str(listed)] = len(ctx.captured_queries)
        self.results["phases"]["queries"] = counts

    def run(self) -> dict:
        self.setup()
        self.latency()
        self.throughput()
        self.noop_baseline()
        self.pages()
        self.queries()
        return self.results


# ------------------------------------------------------------------------------
# Verdicts and the table
# ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="scale every job count")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker and gunicorn (to var/bench/)"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="split the 100 generation threads over this many worker processes (default 1)",
    )
    args = parser.parse_args(argv)
    terminate_on_signals()
    try:
        database_url, broker_url = services_from_env()
    except StackError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    db_url = with_database(database_url, DB_NAME)
    broker = with_redis_db(broker_url, REDIS_DB)
    stack = Stack(ROOT / "var" / "bench")
    began = time.monotonic()
    if args.profile and profile.py_spy() is None:
        print("bench: --profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return 2
    bench = Bench(
        stack,
        db_url,
        broker,
        args.scale,
        profiling=args.profile,
        worker_processes=args.worker_processes,
    )
    try:
        results = bench.run()
    except StackError as error:
        print(f"bench: {error}\n(logs in {stack.log_dir})", file=sys.stderr)
        return 1
    finally:
        stack.close()
        redis_flush(broker)
        if not args.keep_db:
            database_drop(db_url)
    results["run_seconds"] = round(time.monotonic() - began, 1)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    rows = report.judge(results)
    env = results["environment"]
    load = " ".join(f"{x:.2f}" for x in env["load_average_at_start"])
    print(f"\nVendo {env['commit']} on {env['cpus']} CPUs, load average at start {load}")
    print(stats.table(rows, ("measure", "value", "target", "")))
    misses = [k for k, ok in results["verdicts"].items() if not ok]
    passed = len(results["verdicts"]) - len(misses)
    print(
        f"\n{passed} PASS, {len(misses)} MISS; run time {results['run_seconds']} s. "
        "Figures in var/bench.json, logs in var/bench/."
    )
    out = ROOT / "var" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
