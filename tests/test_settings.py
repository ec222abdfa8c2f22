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


def production(**env: str) -> dict:
    """Return a production environment: DEBUG unset, the required variables set."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(45),
        "ALLOWED_HOSTS": "vendo.example.com",
        "AI_BACKEND": "anthropic",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        **env,
    }


def setting(name: str, **env: str) -> str:
    """Return repr(settings.<name>) as a fresh process with `env` sees it."""
    code = f"from django.conf import settings; print(repr(getattr(settings, {name!r}, None)))"
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, output(result)
    return result.stdout.strip().splitlines()[-1]


def test_production_settings_pass_the_deploy_checks():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production())

    assert result.returncode == 0, output(result)
    assert "no issues" in output(result)


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
