"""Settings: production passes Django's deploy checks, and bad configuration refuses to start."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = ROOT / "config" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
# env("NAME", ...), env.int("NAME", ...) and the other typed readers in config/settings.py.
ENV_READ = re.compile(
    r"""(?<![\w.])env(?:\.(?:int|bool|float|list|db))?\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py in a fresh process with only `env` (and the services in use) set."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if name in os.environ:
            base[name] = os.environ[name]
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
DEV_RECIPIENT = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"  # anvil #9: its key is public
DEV_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"


def production(**changes: str) -> dict:
    """A production environment on Base with the platform's own key, changed by `changes`."""
    from eth_account import Account

    account = Account.create()
    env = {
        "SECRET_KEY": secrets.token_urlsafe(45),
        "ALLOWED_HOSTS": "vendo.example.com",
        "CHAIN_ID": "8453",
        "PAYMENT_TOKEN_ADDRESS": BASE_USDC,
        "PAYMENT_RECIPIENT": account.address,
        "PLATFORM_SIGNER_KEY": account.key.to_0x_hex(),
        "AI_BACKEND": "anthropic",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
    }
    env.update(changes)
    return {name: value for name, value in env.items() if value is not None}


def deploy_check(**env: str) -> subprocess.CompletedProcess:
    return manage("check", "--deploy", "--fail-level", "WARNING", **env)


def setting(name: str, **env: str) -> str:
    """Return repr(settings.<name>) as a fresh process with `env` sees it."""
    code = f"from django.conf import settings; print(repr(getattr(settings, {name!r}, None)))"
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, output(result)
    return result.stdout.strip().splitlines()[-1]


def test_production_settings_pass_the_deploy_checks():
    result = deploy_check(**production())

    assert result.returncode == 0, output(result)
    assert "no issues" in output(result)


def test_deploy_check_fails_with_the_dev_recipient_on_base():
    result = deploy_check(
        **production(PAYMENT_RECIPIENT=DEV_RECIPIENT, PLATFORM_SIGNER_KEY=DEV_KEY)
    )

    assert result.returncode != 0
    assert "payments.E002" in output(result)
    assert "payments.E004" in output(result)


def test_production_has_no_default_recipient():
    result = deploy_check(**production(PAYMENT_RECIPIENT=None))

    assert result.returncode != 0
    assert "payments.E001" in output(result)


def test_a_signer_that_is_not_the_recipient_is_refused():
    result = deploy_check(**production(PLATFORM_SIGNER_KEY="0x" + "11" * 32))

    assert result.returncode != 0
    assert "payments.E005" in output(result)


def test_deploy_check_fails_on_base_with_the_dev_token_file_and_no_token_address(tmp_path):
    devchain_file = ROOT / "var" / "devchain.json"
    kept = devchain_file.read_text() if devchain_file.is_file() else None
    devchain_file.parent.mkdir(exist_ok=True)
    devchain_file.write_text('{"token_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}')
    try:
        result = deploy_check(**production(PAYMENT_TOKEN_ADDRESS=None))
    finally:
        if kept is None:
            devchain_file.unlink()
        else:
            devchain_file.write_text(kept)

    assert result.returncode != 0
    assert "payments.E006" in output(result)


def test_production_without_a_shared_cache_fails_the_checks():
    """Each process would count its own requests: the rate limits would not hold."""
    result = deploy_check(**production(CACHE_URL=None))

    assert result.returncode != 0
    assert "django_ratelimit.E003" in output(result)
    assert "is not a shared cache" in output(result)


def test_a_rate_limit_written_wrong_refuses_to_start():
    result = manage("check", DEBUG="true", RATE_LIMIT_ORDERS="10 per minute")

    assert result.returncode != 0
    assert "RATE_LIMIT_ORDERS='10 per minute'" in output(result)


def test_production_without_secret_key_refuses_to_start():
    env = production()
    del env["SECRET_KEY"]
    result = manage("check", **env)

    assert result.returncode != 0
    assert "SECRET_KEY" in output(result)


def test_production_without_an_explicit_ai_backend_refuses_to_start():
    # Falling back to the offline sampler would hand paying buyers sample answers.
    env = production()
    del env["AI_BACKEND"]
    result = manage("check", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in output(result)
    assert "AI_BACKEND" in output(result)


def test_proxy_ssl_header_is_trusted_only_when_a_proxy_is_declared():
    # Without a proxy in front, any client could send X-Forwarded-Proto: https.
    assert setting("SECURE_PROXY_SSL_HEADER", **production()) == "None"
    assert setting("SECURE_PROXY_SSL_HEADER", **production(BEHIND_PROXY="true")) == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_env_example_leaves_debug_commented_with_a_warning():
    # Copied to production as it is, the example must not turn DEBUG on.
    lines = ENV_EXAMPLE.read_text().splitlines()

    assert not [line for line in lines if re.match(r"\s*DEBUG\s*=", line)]
    debug_at = next(i for i, line in enumerate(lines) if re.match(r"#\s*DEBUG=", line))
    assert any("WARNING" in line for line in lines[max(debug_at - 5, 0) : debug_at])


@pytest.mark.parametrize(
    "command", [["check"], ["migrate", "--plan"], ["devchain_setup", "--help"]]
)
def test_worker_timeouts_out_of_order_refuse_to_start(command):
    result = manage(*command, DEBUG="true", CELERY_TASK_TIME_LIMIT="10")

    assert result.returncode != 0
    text = output(result)
    assert "ImproperlyConfigured" in text
    assert re.search(r"CELERY_TASK_SOFT_TIME_LIMIT \(\d+s\)\s*<\s*CELERY_TASK_TIME_LIMIT", text)
    assert "CELERY_TASK_TIME_LIMIT (10s)" in text


def test_settings_reader_finds_the_variables():
    """Guard the regex below: an empty match would make the .env.example test pass vacuously."""
    names = set(ENV_READ.findall(SETTINGS_SOURCE.read_text()))

    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "CHAIN_ID"} <= names


def test_env_example_lists_every_setting_read_from_the_environment():
    assert ENV_EXAMPLE.is_file(), ".env.example is missing at the repository root"
    example = ENV_EXAMPLE.read_text()
    names = sorted(set(ENV_READ.findall(SETTINGS_SOURCE.read_text())))

    missing = [
        name for name in names if not re.search(rf"^(?:#\s*)?{name}=", example, re.MULTILINE)
    ]

    assert missing == []
