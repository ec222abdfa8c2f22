"""Admin sign-in: repeated failures lock a username out from one address (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import OperatorFactory, ProviderFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(client, username, password, address="10.3.0.1"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def test_the_failure_limit_locks_the_username_out_with_the_lockout_page(client):
    ProviderFactory(username="ada")

    codes = [sign_in(client, "ada", "wrong").status_code for _ in range(2)]
    locked = sign_in(client, "ada", "wrong")

    assert codes == [200, 200]  # the login form again, with its error
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    page = locked.content.decode()
    assert "Sign-in locked" in page
    assert "Try again in 15 minutes, or ask an operator to unlock it." in page
    assert 'class="site-header"' in page


def test_the_right_password_is_refused_while_locked_out(client):
    ProviderFactory(username="ada")
    for _ in range(3):
        sign_in(client, "ada", "wrong")

    response = sign_in(client, "ada", "pw")

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_holds_one_username_at_one_address(client):
    ProviderFactory(username="ada")
    ProviderFactory(username="grace")
    for _ in range(3):
        sign_in(client, "ada", "wrong", address="10.3.0.1")

    assert sign_in(Client(), "ada", "pw", address="10.3.0.2").status_code == 302
    assert sign_in(Client(), "grace", "pw", address="10.3.0.1").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client):
    ProviderFactory(username="ada")
    for _ in range(3):
        sign_in(client, "ada", "wrong")

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert sign_in(client, "ada", "pw").status_code == 302


def test_a_successful_sign_in_resets_the_count(client):
    ProviderFactory(username="ada")
    for _ in range(2):
        sign_in(client, "ada", "wrong")
    assert sign_in(client, "ada", "pw").status_code == 302
    client.logout()

    codes = [sign_in(client, "ada", "wrong").status_code for _ in range(2)]

    assert codes == [200, 200]


def test_behind_a_proxy_the_lockout_keys_on_the_forwarded_address(client, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    ProviderFactory(username="ada")
    for _ in range(3):
        client.post(
            LOGIN,
            {"username": "ada", "password": "wrong"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR="203.0.113.5",
        )

    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"
    another = Client().post(
        LOGIN,
        {"username": "ada", "password": "pw"},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.6",
    )
    assert another.status_code == 302


def test_operators_see_the_lockout_in_the_admin(client):
    ProviderFactory(username="ada")
    for _ in range(3):
        sign_in(Client(), "ada", "wrong")
    client.force_login(OperatorFactory())

    index = client.get(reverse("admin:index")).content.decode()
    attempts = client.get(reverse("admin:axes_accessattempt_changelist"))

    assert "Access attempts" in index
    assert attempts.status_code == 200
    assert "ada" in attempts.content.decode()
    assert "Locked Out" in attempts.content.decode()


def test_providers_cannot_see_the_attempts(client):
    ProviderFactory(username="ada")
    for _ in range(3):
        sign_in(Client(), "ada", "wrong")
    attempt = AccessAttempt.objects.get()
    client.force_login(ProviderFactory())

    index = client.get(reverse("admin:index")).content.decode()

    assert "Access attempts" not in index
    assert "Access logs" not in index
    for url in [
        reverse("admin:axes_accessattempt_changelist"),
        reverse("admin:axes_accessattempt_change", args=[attempt.pk]),
        reverse("admin:axes_accesslog_changelist"),
        reverse("admin:axes_accessfailurelog_changelist"),
    ]:
        assert client.get(url).status_code == 403, url
