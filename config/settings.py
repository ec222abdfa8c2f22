"""Vendo settings, read from the environment through django-environ.

With no environment at all Vendo runs on its embedded defaults (SQLite and a filesystem broker
under var/, the dev chain, the offline AI backend). `.env.example` lists every variable.
"""

import json
from decimal import Decimal
from pathlib import Path

import environ
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
    "marketplace",
    "jobs",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

# Rendered results are cached here: per process by default, shared with e.g. redis://.
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

# How often beat runs the periodic tasks, in seconds.
CHAIN_SCAN_INTERVAL = env.float("CHAIN_SCAN_INTERVAL", default=3.0)
REAPER_INTERVAL = env.float("REAPER_INTERVAL", default=30.0)
# While jobs wait for the platform's AI key, how often a free call checks whether it works.
PLATFORM_PROBE_INTERVAL = env.float("PLATFORM_PROBE_INTERVAL", default=60.0)


def _every(seconds: float, task: str) -> dict:
    # A run not started within its interval expires: after an outage beat's backlog is dropped,
    # not replayed, and the next run does the same work.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


CELERY_BEAT_SCHEDULE = {
    "scan-transfers": _every(CHAIN_SCAN_INTERVAL, "payments.scan_transfers"),
    "recheck-payments": _every(CHAIN_SCAN_INTERVAL, "payments.recheck_pending"),
    "expire-invoices": _every(30.0, "payments.expire_invoices"),
    "reap-jobs": _every(REAPER_INTERVAL, "jobs.reap"),
    "resume-held-jobs": _every(PLATFORM_PROBE_INTERVAL, "jobs.resume_held"),
}

# ------------------------------------------------------------------------------
# Payments
# ------------------------------------------------------------------------------
CHAIN_RPC_URL = env("CHAIN_RPC_URL", default="http://127.0.0.1:8545")
CHAIN_ID = env.int("CHAIN_ID", default=31337)
# Unset on the dev chain: `manage.py devchain_setup` deploys TestUSDC and records its address
# in var/devchain.json, read here.
DEVCHAIN_FILE = VAR_DIR / "devchain.json"
PAYMENT_TOKEN_ADDRESS = env("PAYMENT_TOKEN_ADDRESS", default="")
if not PAYMENT_TOKEN_ADDRESS and DEVCHAIN_FILE.is_file():
    PAYMENT_TOKEN_ADDRESS = json.loads(DEVCHAIN_FILE.read_text())["token_address"]
# Where buyers pay. The default is anvil's account #9, a public dev key.
PAYMENT_RECIPIENT = env("PAYMENT_RECIPIENT", default="0xa0Ee7A142d267C1f36714E4a8F75612F20a79720")
REQUIRED_CONFIRMATIONS = env.int("REQUIRED_CONFIRMATIONS", default=1)
INVOICE_TTL_MINUTES = env.int("INVOICE_TTL_MINUTES", default=30)
# 1000 basis points = 10% to the platform, 90% to the provider.
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=1000)
# The watcher reads at most this many blocks per scan, so a long outage catches up in steps.
CHAIN_SCAN_MAX_BLOCKS = env.int("CHAIN_SCAN_MAX_BLOCKS", default=2000)
# The "Pay with dev wallet" button appears only in DEBUG on the dev chain.
DEV_WALLET_ENABLED = DEBUG and CHAIN_ID == 31337

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
