"""Vendo's settings for the bench's gunicorn: the same, plus the baseline URL.

Only ROOT_URLCONF (Vendo's URLs plus /bench/baseline/) and STATIC_ROOT (a scratch folder the
bench fills with collectstatic, since DEBUG is off) differ from config.settings.
"""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
STATIC_ROOT = os.environ.get("BENCH_STATIC_ROOT", STATIC_ROOT)  # noqa: F405
