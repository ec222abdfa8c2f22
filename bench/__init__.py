"""Benchmarks and fault drills on the real stack. Never part of `make test`.

`python -m bench` (make bench) measures the payment-to-start latency, worker throughput and CPU,
page timings and query counts, beside raw Celery and a one-query Django view measured in the
same run. `python -m bench.drills` (make drills) kills workers and restarts Redis while paid
jobs run, and counts lost and doubled jobs.

Both create their own PostgreSQL database and use their own Redis database (or server), start
every process they need themselves and stop them all on the way out.
"""
