"""The bench's verdicts and the rows of its table."""

from bench import stats

TARGETS = {
    "paid_to_start_p50_ms": 20.0,
    "paid_to_start_p99_ms": 100.0,
    "throughput_vs_ideal": 0.90,
    "efficiency_vs_noop": 0.90,
    "cpu_ms_per_job": 10.0,
    "page_p99_ms": 10.0,
    "rps_vs_baseline": 0.5,
}


def judge(results: dict) -> list[tuple]:
    """Return the table rows, and record each verdict in results["verdicts"]."""
    p, t, env = results["phases"], TARGETS, results["environment"]
    verdicts: dict = {}
    rows: list[tuple] = []

    def add(key: str, label: str, value: str, target: str, ok: bool) -> None:
        verdicts[key] = ok
        rows.append((label, value, target, stats.verdict(ok)))

    def info(label: str, value: str = "", target: str = "") -> None:
        rows.append((label, value, target, ""))

    def note(text: str) -> None:
        rows.append((text,))

    lat, noop = p["paid_to_start"], p["noop"]
    note("1. payment confirmed -> generation started, at 20 jobs/s")
    ok = lat["p50_ms"] <= t["paid_to_start_p50_ms"]
    add("paid_to_start_p50", "  Vendo p50", f"{lat['p50_ms']:.1f} ms", "<= 20 ms", ok)
    ok = lat["p99_ms"] <= t["paid_to_start_p99_ms"]
    add("paid_to_start_p99", "  Vendo p99", f"{lat['p99_ms']:.1f} ms", "<= 100 ms", ok)
    p50, p99 = noop["enqueue_to_start_p50_ms"], noop["enqueue_to_start_p99_ms"]
    info("  no-op task enqueue -> start p50 / p99", f"{p50:.1f} / {p99:.1f} ms", "baseline")
    info("  Vendo p50 / no-op p50", f"{lat['p50_ms'] / p50:.1f}x")
    note(
        f"  (achieved {lat['rate_achieved_per_s']}/s; {lat['completed']}/{lat['jobs']} "
        f"completed; payment_submit p50 {lat['payment_submit_p50_ms']} ms)"
    )

    tp = p["throughput"]
    note(f"2. throughput, {env['concurrency']} in flight, {env['stub_latency_s']:g} s model calls")
    value = f"{tp['jobs_per_s']:.1f} ({tp['vs_ideal']:.0%})"
    ok = tp["vs_ideal"] >= t["throughput_vs_ideal"]
    add("throughput_vs_ideal", "  Vendo jobs/s (vs ideal 100/s)", value, ">= 90%", ok)
    value = f"{noop['sleep_jobs_per_s']:.1f} ({noop['sleep_vs_ideal']:.0%})"
    info("  no-op sleep(1) tasks jobs/s (vs ideal)", value, "baseline")
    eff = tp["vs_ideal"] / noop["sleep_vs_ideal"]
    ok = eff >= t["efficiency_vs_noop"]
    add("throughput_vs_noop", "  Vendo efficiency / no-op efficiency", f"{eff:.2f}", ">= 0.90", ok)
    if tp["unfinished"] or tp["worker_task_errors"]:
        note(
            f"  ({tp['unfinished']} of {tp['jobs']} jobs never finished; worker task errors: "
            f"{tp['worker_task_errors']})"
        )
    connections = tp["db_connections_peak"]
    note(
        f"  ({tp['completed']} jobs in {tp['seconds']} s; mean in flight {tp['mean_in_flight']}; "
        f"mean job {tp['mean_job_seconds']} s; worker's DB connections peak {connections}; "
        f"raw no-op dispatch {noop['noop_jobs_per_s']}/s)"
    )

    cpu = p["cpu"]
    note("3. generation worker CPU per job")
    ok = cpu["ms_per_job"] <= t["cpu_ms_per_job"]
    add(
        "cpu_per_job",
        "  Vendo worker, 100 in flight",
        f"{cpu['ms_per_job']:.2f} ms",
        "<= 10 ms",
        ok,
    )
    note(f"    (user {cpu['user_ms_per_job']} ms + system {cpu['system_ms_per_job']} ms)")
    info("  Vendo worker, 20 jobs/s", f"{lat['worker_cpu_ms_per_job']:.2f} ms")
    note(
        f"    (per job, 100 in flight: PostgreSQL {tp['postgres_cpu_ms_per_job']} ms, stub "
        f"{tp['stub_cpu_ms_per_job']} ms, Redis {tp['redis_cpu_ms_per_job']} ms, bench driver "
        f"{tp['driver_cpu_ms_per_job']} ms)"
    )
    info("  no-op worker, sleep(1) tasks", f"{noop['worker_cpu_ms_per_task']:.2f} ms", "baseline")

    pages = p["pages"]
    base_rps = pages["baseline"]["loaded_32"]["rps"]
    note(f"4. pages (gunicorn {env['gunicorn']}, DEBUG off)")
    names = {
        "baseline": "one-query view (baseline)",
        "pay_endpoint": "POST /jobs/<uuid>/payments",
        "job_page_completed": "GET job page, completed, again",
        "job_page_completed_first_view": "GET job page, completed, 1st view",
        "job_page_awaiting_payment": "GET job page, awaiting payment, again",
        "job_page_awaiting_payment_first_view": "GET job page, awaiting payment, 1st view",
    }
    for key, label in names.items():
        un, lo = pages[key]["unloaded"], pages[key]["loaded_32"]
        latency = f"{un['p50_ms']:.1f} / {un['p99_ms']:.1f} ms"
        if key == "baseline":
            info(f"  {label} p50 / p99", latency, "baseline")
            info(f"  {label} req/s @32", f"{lo['rps']:.0f}", "baseline")
        else:
            ok = un["p99_ms"] <= t["page_p99_ms"]
            add(f"{key}_p99", f"  {label} p50 / p99", latency, "p99 <= 10 ms", ok)
            ratio = lo["rps"] / base_rps
            ok = ratio >= t["rps_vs_baseline"]
            add(
                f"{key}_rps",
                f"  {label} req/s @32",
                f"{lo['rps']:.0f} ({ratio:.2f}x)",
                ">= 0.5x",
                ok,
            )
        per_connection = un.get("p50_per_connection_ms")
        note(
            f"    (server CPU {lo['server_cpu_ms_per_request']} ms/request at 32 clients"
            + (f"; unloaded p50 per connection {per_connection} ms)" if per_connection else ")")
        )
    pay = pages["pay_endpoint"]
    note(
        f"  (pay: {pay['posts']} POSTs paid {pay['jobs_paid_by_posts']} jobs; statuses "
        f"unloaded {pay['unloaded']['statuses']}, loaded {pay['loaded_32']['statuses']})"
    )

    note("6. SQL queries per page (10 skills -> 1,000 skills)")
    for label, counts in p["queries"].items():
        values = list(counts.values())
        shown = " -> ".join(str(v) for v in values)
        add(f"queries_{label}", f"  {label}", shown, "constant", len(set(values)) == 1)
    results["verdicts"] = verdicts
    return rows
