"""Per-client rate limits on writes: orders, hash submissions, and the helper disputes will use."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import environ
import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from jobs.models import Job
from marketplace.ratelimits import client_ip, client_limited, wait_text
from tests.factories import SkillFactory, order

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def limits(settings):
    """Small limits, so a test reaches them in a few requests. The windows are fixed (aligned
    to the clock), so they are hours: a minute's could roll over between two requests."""
    settings.RATE_LIMITS = {"orders": "2/h", "payment_submit": "3/h", "disputes": "1/h"}
    return settings.RATE_LIMITS


def place_order(client, skill, **extra):
    return client.post(skill.get_absolute_url(), {"prompt": "Summarise this."}, **extra)


def submit_hash(client, job, **extra):
    url = reverse("jobs:submit", args=[job.public_id])
    return client.post(url, {"tx_hash": "0xnothex"}, **extra)


def test_orders_past_the_limit_get_the_429_page_with_retry_after(client, limits):
    skill = SkillFactory()

    assert [place_order(client, skill).status_code for _ in range(2)] == [302, 302]
    response = place_order(client, skill)

    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    page = response.content.decode()
    assert "Too many requests" in page
    assert f"Try again in {wait_text(retry_after)}." in page
    assert 'class="site-header"' in page  # the site's own page, not a bare error
    assert "no-store" in response["Cache-Control"]
    assert Job.objects.count() == 2


def test_limited_client_asking_for_json_gets_the_json_error(client, limits):
    skill = SkillFactory()
    for _ in range(2):
        place_order(client, skill)

    response = place_order(client, skill, HTTP_ACCEPT="application/json")

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["retry_after"] == int(response["Retry-After"])
    assert "Try again in" in error["message"]


def test_browser_accept_header_gets_the_html_page(client, limits):
    skill = SkillFactory()
    for _ in range(2):
        place_order(client, skill)

    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = place_order(client, skill, HTTP_ACCEPT=accept)

    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")


def test_reading_the_skill_page_is_never_limited(client, limits):
    skill = SkillFactory()

    assert {client.get(skill.get_absolute_url()).status_code for _ in range(30)} == {200}
    assert place_order(client, skill).status_code == 302


def test_polling_status_json_at_the_page_rate_is_never_limited(client, settings):
    settings.RATE_LIMITS = {"orders": "1/h", "payment_submit": "1/h", "disputes": "1/h"}
    job = order()
    status_url = reverse("jobs:status", args=[job.public_id])

    # The job page polls every 1.5 s: 40 a minute; ten minutes of polling here.
    codes = {client.get(status_url, HTTP_ACCEPT="application/json").status_code for _ in range(400)}

    assert codes == {200}
    # Reads spent none of the client's write budget.
    assert submit_hash(client, job).status_code == 400


def test_the_session_is_limited_when_it_changes_address(client, limits):
    skill = SkillFactory()
    place_order(client, skill, REMOTE_ADDR="10.0.0.1")  # the first order opens the session

    codes = [place_order(client, skill, REMOTE_ADDR=f"10.0.0.{n}").status_code for n in (2, 3, 4)]

    assert codes == [302, 302, 429]


def test_the_address_is_limited_when_it_drops_its_cookies(limits):
    skill = SkillFactory()
    codes = [place_order(Client(), skill, REMOTE_ADDR="10.0.0.9").status_code for _ in range(3)]

    assert codes == [302, 302, 429]


def test_another_client_is_not_limited_by_the_first(client, limits):
    skill = SkillFactory()
    for _ in range(3):
        place_order(client, skill)

    assert place_order(Client(), skill, REMOTE_ADDR="10.0.0.7").status_code == 302


def test_hash_submissions_past_the_limit_get_the_429(client, limits):
    job = order()

    codes = [submit_hash(client, job).status_code for _ in range(4)]

    assert codes == [400, 400, 400, 429]


def test_dev_wallet_shares_the_hash_submission_limit(client, limits, settings):
    settings.DEV_WALLET_ENABLED = False
    job = order()
    for _ in range(3):
        submit_hash(client, job)

    response = client.post(reverse("jobs:dev-pay", args=[job.public_id]))

    assert response.status_code == 429


def test_orders_and_hash_submissions_are_counted_apart(client, limits):
    skill = SkillFactory()
    for _ in range(2):
        place_order(client, skill)
    job = Job.objects.first()

    assert place_order(client, skill).status_code == 429
    assert submit_hash(client, job).status_code == 400


def test_a_limit_store_that_is_down_lets_orders_through(client, limits, settings, caplog):
    # Nothing listens on port 1: every cache call fails to connect.
    settings.CACHES = {"default": environ.Env.cache_url_config("redis://127.0.0.1:1/0")}
    skill = SkillFactory()

    codes = [place_order(client, skill).status_code for _ in range(3)]

    assert codes == [302, 302, 302]
    assert "Rate limit store unavailable; orders not limited" in caplog.text


def test_dispute_limit_is_ready_for_the_dispute_view(limits):
    factory = RequestFactory()

    first = client_limited(factory.post("/jobs/x/dispute", REMOTE_ADDR="10.1.1.1"), "disputes")
    second = client_limited(factory.post("/jobs/x/dispute", REMOTE_ADDR="10.1.1.1"), "disputes")

    assert first is None
    assert 1 <= second <= 3600


def test_reads_never_count_in_the_helper(limits):
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.1.2")

    assert [client_limited(request, "disputes") for _ in range(5)] == [None] * 5


# ------------------------------------------------------------------------------
# Who the client is
# ------------------------------------------------------------------------------


def test_forwarded_header_is_ignored_unless_configured(settings):
    settings.CLIENT_IP_HEADER = ""
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert client_ip(request) == "10.0.0.1"


def test_configured_header_gives_the_address_the_trusted_proxy_saw(settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.CLIENT_IP_PROXY_COUNT = 1
    # The client forged the first entry; the proxy appended the address it really saw.
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )

    assert client_ip(request) == "203.0.113.9"


def test_two_trusted_proxies_skip_the_inner_one(settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.CLIENT_IP_PROXY_COUNT = 2
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.0.2"
    )

    assert client_ip(request) == "203.0.113.9"


def test_single_address_header_is_read_as_is(settings):
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_REAL_IP="2001:db8::1")

    assert client_ip(request) == "2001:db8::1"


@pytest.mark.parametrize("value", ["", "not-an-address", "  ,  "])
def test_missing_or_garbled_header_falls_back_to_the_peer(settings, value):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=value)

    assert client_ip(request) == "10.0.0.1"


def test_behind_a_proxy_clients_are_limited_apart(limits, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    skill = SkillFactory()

    def from_client(address):
        return place_order(Client(), skill, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=address)

    assert [from_client("203.0.113.1").status_code for _ in range(3)] == [302, 302, 429]
    assert from_client("203.0.113.2").status_code == 302


def test_wait_text_reads_naturally():
    assert [wait_text(1), wait_text(42), wait_text(600), wait_text(7200)] == [
        "1 second",
        "42 seconds",
        "10 minutes",
        "2 hours",
    ]


# ------------------------------------------------------------------------------
# Shared between processes
# ------------------------------------------------------------------------------

ANOTHER_PROCESS = """
import sys
import django
django.setup()
from django.conf import settings
from django.test import RequestFactory
from marketplace.ratelimits import client_limited
settings.RATELIMIT_CACHE_PREFIX = sys.argv[1]
settings.RATE_LIMITS = {"orders": "2/d"}
print(client_limited(RequestFactory().post("/", REMOTE_ADDR="10.2.2.2"), "orders"))
"""


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
    reason="needs Redis (make test uses it when it answers on 127.0.0.1:6379)",
)
def test_a_second_process_sees_the_counts_in_redis(limits, settings):
    # A day's window: the other process takes a second or two to start, and a minute's window
    # could roll over meanwhile and start counting afresh.
    settings.RATE_LIMITS = {"orders": "2/d"}
    redis_url = os.environ["CELERY_BROKER_URL"]
    settings.CACHES = {"default": environ.Env.cache_url_config(redis_url)}
    prefix = f"rl:{uuid.uuid4().hex}:"
    settings.RATELIMIT_CACHE_PREFIX = prefix
    request = RequestFactory().post("/", REMOTE_ADDR="10.2.2.2")
    assert [client_limited(request, "orders") for _ in range(2)] == [None, None]

    other = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS, prefix],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CACHE_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert other.returncode == 0, other.stderr
    retry_after = int(other.stdout.strip().splitlines()[-1])
    assert 1 <= retry_after <= 86400
