"""Vendo's Celery app plus one bench-only task, for the raw-Celery baseline.

    celery -A bench.celery_app worker -Q bench --pool threads --concurrency 100

The worker runs with Vendo's own Celery settings (acks late, prefetch 1, the same broker), so
the only difference from the generation worker is the task: `bench.noop` records when it was
sent, started and finished in a Redis list and optionally sleeps, touching no database.
"""

import time
from functools import cache

import redis

from config.celery import app

QUEUE = "bench"
RESULTS_KEY = "bench:noop"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url)


@app.task(name="bench.noop", ignore_result=True)
def noop(sent_at: float, sleep: float = 0.0) -> None:
    started_at = time.time()
    if sleep:
        time.sleep(sleep)
    _redis().rpush(RESULTS_KEY, f"{sent_at} {started_at} {time.time()}")
