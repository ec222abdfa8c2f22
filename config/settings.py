"""Vendo settings, read from the environment through django-environ.

With no environment at all Vendo runs on its embedded defaults (SQLite and a filesystem broker
under var/, the dev chain, the offline AI backend). `.env.example` lists every variable.
"""

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
# Production has no default: Django refuses to start without a secret key when DEBUG is off.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-vendo-dev-only" if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY: it has no default when DEBUG is off.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.VendoAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",
    "django_ratelimit",
    "axes",
    "marketplace",
    "jobs",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marketplace.context_processors.site",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Keep connections open between requests: opening one costs about 4 ms.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one file: wait for locks, take them early.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rendered results and the rate limits' counters live here: per process by default, shared
# by every process with redis://. Production needs a shared one for the limits to hold (the
# rate limit check below refuses to start without one).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# ------------------------------------------------------------------------------
# Auth, i18n, static files
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Sign-in lockout (https://django-axes.readthedocs.io/en/latest/4_configuration.html): after
# AXES_FAILURE_LIMIT failed sign-ins for one username from one address, that pair is locked
# out for AXES_COOLOFF_MINUTES (counted again from each further failure). Keyed by the pair, so
# a guesser elsewhere cannot lock an operator out. Operators see and clear the attempts in the
# admin (Axes > Access attempts); providers have no permission on them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "marketplace.ratelimits.client_ip"
AXES_LOCKOUT_CALLABLE = "marketplace.ratelimits.lockout_response"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# ------------------------------------------------------------------------------
# Security (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/)
# ------------------------------------------------------------------------------
# Trust X-Forwarded-Proto only when a proxy that sets it (and strips the client's) is in front:
# without one, any client could claim https.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy (https://django-csp.readthedocs.io/en/latest/configuration.html):
# every script and stylesheet is a file of this site; nothing inline, nothing from elsewhere
# (data: only for the icons drawn in the stylesheets). A wallet extension talks to its page
# through its own injected provider, which the policy does not govern.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# A job's URL is its buyer's key: never send it to another site in a Referer.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# The job page's "My jobs" list lives in the session, so anonymous buyers keep theirs a while.
SESSION_COOKIE_AGE = 60 * 60 * 24 * 90

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # The Anthropic SDK's HTTP client logs every request at INFO.
    "loggers": {"httpx2": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}

# ------------------------------------------------------------------------------
# Rate limits (https://django-ratelimit.readthedocs.io/en/stable/settings.html)
# ------------------------------------------------------------------------------
# Writes a client (an IP address, and a session) may make, as "count/period" with a period of
# s, m, h or d: orders, transaction hashes (the form, the wallet and the dev wallet), disputes.
# Reads, the job page's status polling included, are never limited.
RATE_LIMITS = {
    "orders": env("RATE_LIMIT_ORDERS", default="10/m"),
    "payment_submit": env("RATE_LIMIT_PAYMENT_SUBMIT", default="10/m"),
    "disputes": env("RATE_LIMIT_DISPUTES", default="10/h"),
}
for _scope, _rate in RATE_LIMITS.items():
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", _rate):
        raise ImproperlyConfigured(
            f"RATE_LIMIT_{_scope.upper()}={_rate!r}: write a rate as count/period, e.g. 10/m."
        )
# Behind a proxy the client's address is in a header the proxy sets (X-Forwarded-For,
# X-Real-IP); name it here, with the number of proxies that append to it. Unset, no header is
# trusted and REMOTE_ADDR is the client. The admin's sign-in lockout uses the same address.
CLIENT_IP_HEADER = env("CLIENT_IP_HEADER", default="")
CLIENT_IP_PROXY_COUNT = env.int("CLIENT_IP_PROXY_COUNT", default=1)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "marketplace.ratelimits.client_ip"
# A cache that is down lets writes through (and logs it) rather than refusing every order.
RATELIMIT_FAIL_OPEN = True
SILENCED_SYSTEM_CHECKS = [
    # "Not officially supported": Django's own RedisCache, which is shared and increments
    # atomically (INCR), is not on the library's list. Broken backends still fail (E003).
    "django_ratelimit.W001",
]
if DEBUG:
    # A development server is one process: its memory is shared enough for the limits.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# ------------------------------------------------------------------------------
# Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html)
# ------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "payments"
CELERY_TASK_ROUTES = {
    "jobs.run_generation": {"queue": "generation"},
    "jobs.reap": {"queue": "reaper"},
    "jobs.resume_held": {"queue": "reaper"},
    "payments.*": {"queue": "payments"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# One model call may take GENERATION_TIMEOUT seconds (a deadline the generation enforces
# itself: Celery's thread pool does not enforce time limits), and the SDK retries it
# ANTHROPIC_MAX_RETRIES times; the time limits and the broker's visibility timeout stack above
# that worst case, so a message is never redelivered while its first run is still alive.
GENERATION_TIMEOUT = env.int("GENERATION_TIMEOUT", default=300)
ANTHROPIC_MAX_RETRIES = env.int("ANTHROPIC_MAX_RETRIES", default=1)
GENERATION_WORST_CASE = GENERATION_TIMEOUT * (ANTHROPIC_MAX_RETRIES + 1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int(
    "CELERY_TASK_SOFT_TIME_LIMIT", default=GENERATION_WORST_CASE + 30
)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=CELERY_TASK_SOFT_TIME_LIMIT + 30)
CELERY_VISIBILITY_TIMEOUT = env.int(
    "CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 600
)
if not (
    GENERATION_WORST_CASE
    < CELERY_TASK_SOFT_TIME_LIMIT
    < CELERY_TASK_TIME_LIMIT
    < CELERY_VISIBILITY_TIMEOUT
):
    raise ImproperlyConfigured(
        "Worker timeouts must grow: GENERATION_TIMEOUT x (ANTHROPIC_MAX_RETRIES + 1) "
        f"({GENERATION_WORST_CASE}s) "
        f"< CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}s) "
        f"< CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}s) "
        f"< CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}s)."
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env("BROKER_DIR", default=str(VAR_DIR / "broker")))
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}

# ------------------------------------------------------------------------------
# Payments (payments/checks.py refuses unsafe combinations at start-up)
# ------------------------------------------------------------------------------
DEV_CHAIN_ID = 31337
CHAIN_RPC_URL = env("CHAIN_RPC_URL", default="http://127.0.0.1:8545")
CHAIN_ID = env.int("CHAIN_ID", default=DEV_CHAIN_ID)
CHAIN_RPC_TIMEOUT = env.float("CHAIN_RPC_TIMEOUT", default=10.0)
ON_DEV_CHAIN = DEBUG and CHAIN_ID == DEV_CHAIN_ID
# On the dev chain `manage.py devchain_setup` deploys TestUSDC and records its address in
# var/devchain.json, read here; anywhere else PAYMENT_TOKEN_ADDRESS is required.
DEVCHAIN_FILE = VAR_DIR / "devchain.json"
PAYMENT_TOKEN_ADDRESS = env("PAYMENT_TOKEN_ADDRESS", default="")
if not PAYMENT_TOKEN_ADDRESS and ON_DEV_CHAIN and DEVCHAIN_FILE.is_file():
    PAYMENT_TOKEN_ADDRESS = json.loads(DEVCHAIN_FILE.read_text())["token_address"]
# Where buyers pay, and the key that signs payouts and refunds from there (its address must be
# PAYMENT_RECIPIENT). In DEBUG both default to anvil's account #9, a public dev key; outside
# DEBUG they have no default.
ANVIL_ACCOUNT_9 = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
ANVIL_KEY_9 = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
PAYMENT_RECIPIENT = env("PAYMENT_RECIPIENT", default=ANVIL_ACCOUNT_9 if DEBUG else "")
PLATFORM_SIGNER_KEY = env("PLATFORM_SIGNER_KEY", default=ANVIL_KEY_9 if DEBUG else "")
# Blocks on top of a transfer's before it counts: 1 on the dev chain; on public chains a safe
# default per chain (reorgs deeper than these are not seen in practice). Counted transfers are
# followed until final: the node's "finalized" block, or FINAL_CONFIRMATIONS without one.
CONFIRMATIONS_BY_CHAIN = {DEV_CHAIN_ID: 1, 1: 12, 8453: 10, 84532: 10, 10: 10, 42161: 10, 137: 64}
REQUIRED_CONFIRMATIONS = env.int(
    "REQUIRED_CONFIRMATIONS", default=CONFIRMATIONS_BY_CHAIN.get(CHAIN_ID, 12)
)
FINAL_CONFIRMATIONS = env.int("FINAL_CONFIRMATIONS", default=max(REQUIRED_CONFIRMATIONS, 64))
INVOICE_TTL_MINUTES = env.int("INVOICE_TTL_MINUTES", default=30)
# An expired, cancelled or paid invoice keeps its exact amount this long, so late money is
# recognised as its own and sent back, never taken for another invoice's.
INVOICE_AMOUNT_GRACE_MINUTES = env.int("INVOICE_AMOUNT_GRACE_MINUTES", default=120)
# Only when a price's tails run short: a closed invoice that never saw a transfer or a hash
# gives its amount back after this many minutes instead (abandoned orders must not make a
# price unbuyable).
INVOICE_SILENT_GRACE_MINUTES = env.int("INVOICE_SILENT_GRACE_MINUTES", default=15)
# The watcher reads at most this many blocks per scan, so a long outage catches up in steps.
CHAIN_SCAN_MAX_BLOCKS = env.int("CHAIN_SCAN_MAX_BLOCKS", default=2000)
# Hashes the chain does not know yet: a few per invoice, looked up again with backoff.
MAX_WAITING_HASHES_PER_INVOICE = env.int("MAX_WAITING_HASHES_PER_INVOICE", default=3)
HASH_RECHECK_BASE_SECONDS = env.float("HASH_RECHECK_BASE_SECONDS", default=3.0)
HASH_RECHECK_MAX_SECONDS = env.float("HASH_RECHECK_MAX_SECONDS", default=300.0)
# Receipt lookups one recheck run may make at most.
RECHECK_MAX_CALLS = env.int("RECHECK_MAX_CALLS", default=50)
# Unpaid orders one client (browser, or network address) may hold at once.
MAX_OPEN_ORDERS_PER_CLIENT = env.int("MAX_OPEN_ORDERS_PER_CLIENT", default=10)
# The "Pay with dev wallet" button appears only in DEBUG on the dev chain.
DEV_WALLET_ENABLED = ON_DEV_CHAIN

# ------------------------------------------------------------------------------
# Settlement: the split, disputes, payouts, refunds
# ------------------------------------------------------------------------------
# 1000 basis points = 10% to the platform (plus the invoice tail), 90% to the provider.
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=1000)
# A failed job's refund leaves this many seconds after the failure: until then an operator who
# replays the job (its failure was passing) takes the refund back.
FAILED_REFUND_DELAY_SECONDS = env.int("FAILED_REFUND_DELAY_SECONDS", default=300)
# A completed job may be disputed this long; the provider's share is held until then.
DISPUTE_WINDOW_SECONDS = env.int("DISPUTE_WINDOW_SECONDS", default=86400)
# Every this many seconds, each agent's payable balance of at least PAYOUT_MINIMUM (USDC)
# leaves in one transfer to its payout address.
PAYOUT_INTERVAL_SECONDS = env.int("PAYOUT_INTERVAL_SECONDS", default=3600)
PAYOUT_MINIMUM = Decimal(env("PAYOUT_MINIMUM", default="1"))
# A transfer that matches no invoice and is not claimed within this many hours goes back to
# its sender, unless it is below UNMATCHED_REFUND_MINIMUM (USDC): dust stays for operators.
UNMATCHED_REFUND_HOURS = env.int("UNMATCHED_REFUND_HOURS", default=24)
UNMATCHED_REFUND_MINIMUM = Decimal(env("UNMATCHED_REFUND_MINIMUM", default="0.10"))

# ------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------
# Production has no default: the offline sampler must never answer paying buyers by accident.
AI_BACKEND = env("AI_BACKEND", default="offline" if DEBUG else None)
if AI_BACKEND is None:
    raise ImproperlyConfigured(
        "Set AI_BACKEND (anthropic, or offline for a demo): it has no default when DEBUG is off."
    )
if AI_BACKEND not in {"anthropic", "offline"}:
    raise ImproperlyConfigured(f"Unknown AI_BACKEND {AI_BACKEND!r}: use anthropic or offline.")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env("ANTHROPIC_BASE_URL", default=None)
if AI_BACKEND == "anthropic" and not ANTHROPIC_API_KEY:
    raise ImproperlyConfigured("AI_BACKEND=anthropic needs ANTHROPIC_API_KEY.")
# The models a skill may use, each with its output-token limit and what 1,000 output tokens
# cost the platform in USDC (Anthropic's list prices,
# https://docs.anthropic.com/en/docs/about-claude/models/overview). A skill's price must cover
# that cost; a model missing here cannot be chosen (Skill.clean()).
ALLOWED_MODELS = {
    "claude-sonnet-4-5": {"max_output_tokens": 64_000, "cost_per_1k_output": Decimal("0.015")},
    "claude-haiku-4-5": {"max_output_tokens": 64_000, "cost_per_1k_output": Decimal("0.005")},
    "claude-opus-4-1": {"max_output_tokens": 32_000, "cost_per_1k_output": Decimal("0.075")},
}
GENERATION_MAX_RETRIES = env.int("GENERATION_MAX_RETRIES", default=4)
# A message that kills its worker every time is dead-lettered after this many deliveries.
GENERATION_MAX_DELIVERIES = env.int("GENERATION_MAX_DELIVERIES", default=5)
# A worker holds a job for JOB_LEASE_SECONDS and renews it while it streams; the reaper
# reclaims a job whose lease ran out (its worker died).
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=60)
# The offline backend paces its answer over this many seconds, like a stream.
OFFLINE_STREAM_SECONDS = env.float("OFFLINE_STREAM_SECONDS", default=2.0)
# Retries wait about GENERATION_RETRY_BASE x 2^n seconds (with jitter), at most 60.
GENERATION_RETRY_BASE = env.float("GENERATION_RETRY_BASE", default=2.0)
# A paid job not started after this many seconds may have lost its message (a broker outage
# at enqueue time): the reaper queues it again. Longer than any normal queue wait.
REQUEUE_PAID_AFTER = env.int("REQUEUE_PAID_AFTER", default=300)
# Partial output is saved at most this often while a generation streams.
PARTIAL_SAVE_INTERVAL = env.float("PARTIAL_SAVE_INTERVAL", default=0.5)
# Test runs (unbilled model calls on the platform's key) a provider may start per day (UTC),
# across all its skills: many skills must not add up to free model calls.
PROVIDER_TEST_RUNS_PER_DAY = env.int("PROVIDER_TEST_RUNS_PER_DAY", default=20)

# ------------------------------------------------------------------------------
# Periodic tasks (celery beat), in seconds
# ------------------------------------------------------------------------------
CHAIN_SCAN_INTERVAL = env.float("CHAIN_SCAN_INTERVAL", default=3.0)
REAPER_INTERVAL = env.float("REAPER_INTERVAL", default=30.0)
# While jobs wait for the platform's AI key, how often a free call checks whether it works.
PLATFORM_PROBE_INTERVAL = env.float("PLATFORM_PROBE_INTERVAL", default=60.0)
# How often the books are checked against the chain (manage.py ledger_check, in beat).
LEDGER_CHECK_INTERVAL = env.float("LEDGER_CHECK_INTERVAL", default=600.0)


def _every(seconds: float, task: str) -> dict:
    # A run not started within its interval expires: after an outage beat's backlog is dropped,
    # not replayed, and the next run does the same work.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


CELERY_BEAT_SCHEDULE = {
    "scan-transfers": _every(CHAIN_SCAN_INTERVAL, "payments.scan_transfers"),
    "recheck-payments": _every(CHAIN_SCAN_INTERVAL, "payments.recheck_pending"),
    "advance-transfers": _every(CHAIN_SCAN_INTERVAL, "payments.advance_transfers"),
    "expire-invoices": _every(10.0, "payments.expire_invoices"),
    "refund-unmatched": _every(600.0, "payments.refund_unmatched"),
    "queue-payouts": _every(PAYOUT_INTERVAL_SECONDS, "payments.queue_payouts"),
    "settle-jobs": _every(10.0, "jobs.settle"),
    "reap-jobs": _every(REAPER_INTERVAL, "jobs.reap"),
    "resume-held-jobs": _every(PLATFORM_PROBE_INTERVAL, "jobs.resume_held"),
    "check-ledger": _every(LEDGER_CHECK_INTERVAL, "payments.check_ledger"),
}
