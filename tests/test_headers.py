"""Security headers on every kind of page, and templates with nothing inline for the CSP."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from payments.qr import qr_svg
from tests.factories import OperatorFactory, ProviderFactory, SkillFactory, order

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def policy(response) -> dict[str, list[str]]:
    """Parse the Content-Security-Policy header into {directive: [sources]}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_locked_down(response) -> None:
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert not any("unsafe" in source for sources in csp.values() for source in sources)
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def page_urls(client) -> dict[str, tuple[str, int]]:
    """Every kind of public page, with the status it answers."""
    skill = SkillFactory()
    job = order(skill=skill)
    return {
        "catalog": (reverse("marketplace:catalog"), 200),
        "agent": (skill.agent.get_absolute_url(), 200),
        "skill": (skill.get_absolute_url(), 200),
        "job": (job.get_absolute_url(), 200),
        "status.json": (reverse("jobs:status", args=[job.public_id]), 200),
        "my jobs": (reverse("jobs:mine"), 200),
        "admin login": (reverse("admin:login"), 200),
        "404": ("/agents/nobody/nothing/", 404),
    }


@pytest.mark.parametrize(
    "kind", ["catalog", "agent", "skill", "job", "status.json", "my jobs", "admin login", "404"]
)
def test_every_page_sends_the_policy(client, kind):
    url, status = page_urls(client)[kind]

    response = client.get(url)

    assert response.status_code == status
    assert_locked_down(response)


def test_the_429_page_sends_the_policy(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "orders": "1/h"}
    skill = SkillFactory()
    client.post(skill.get_absolute_url(), {"prompt": "One."})

    response = client.post(skill.get_absolute_url(), {"prompt": "Two."})

    assert response.status_code == 429
    assert_locked_down(response)


@pytest.mark.parametrize("user_factory", [OperatorFactory, ProviderFactory])
def test_admin_pages_send_the_policy(client, user_factory):
    user = user_factory()
    skill = SkillFactory(**({"agent__owner": user} if user_factory is ProviderFactory else {}))
    client.force_login(user)

    for url in [
        reverse("admin:index"),
        reverse("admin:marketplace_skill_changelist"),
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        reverse("admin:marketplace_agent_add"),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_locked_down(response)


def test_job_page_has_nothing_inline_with_its_qr_code(client):
    job = order()

    content = client.get(job.get_absolute_url()).content.decode()

    assert '<div class="qr"' in content
    assert not re.search(r"\sstyle\s*=", content)
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", content)
    assert "<style" not in content


def test_qr_code_svg_carries_no_style():
    svg = qr_svg("ethereum:0x0000000000000000000000000000000000000001@31337/transfer")

    assert svg.startswith("<svg")
    assert "style" not in svg


TEMPLATE_INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>"), "an inline <script>"),
    (re.compile(r"<style\b"), "a <style> element"),
    (re.compile(r"\sstyle\s*="), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "an inline event handler"),
    (re.compile(r"javascript:", re.IGNORECASE), "a javascript: URL"),
]


@pytest.mark.parametrize(
    "template",
    sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("templates/**/*.html")),
)
def test_templates_have_nothing_inline(template):
    source = (ROOT / template).read_text()

    found = [what for pattern, what in TEMPLATE_INLINE if pattern.search(source)]

    assert found == [], f"{template} has {', '.join(found)}: the CSP would block it"
