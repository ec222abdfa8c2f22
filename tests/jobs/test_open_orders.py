"""A client may hold only a few unpaid orders: each holds an invoice amount, and a script must
not make a skill unbuyable by ordering it over and over."""

import pytest
from django.test import Client

from jobs.models import Job
from tests.conftest import paid
from tests.factories import SkillFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.MAX_OPEN_ORDERS_PER_CLIENT = 3
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "orders": "1000/m"}


def place(client, skill, n: int):
    return client.post(skill.get_absolute_url(), {"prompt": f"Order {n}"}, REMOTE_ADDR="10.0.0.7")


def test_a_client_past_its_open_orders_is_told_which_ones_are_open(client):
    skill = SkillFactory(name="Summariser")
    for n in range(3):
        assert place(client, skill, n).status_code == 302

    response = place(client, skill, 3)

    assert response.status_code == 400
    text = response.content.decode()
    assert "You have 3 unpaid orders" in text
    for job in Job.objects.all():
        assert str(job.public_id)[:8] in text
    assert Job.objects.count() == 3


def test_dropping_cookies_does_not_reset_the_count(client):
    skill = SkillFactory()
    for n in range(3):
        place(client, skill, n)
    stranger_browser = Client()  # a fresh session, from the same address
    assert place(stranger_browser, skill, 9).status_code == 400
    assert Job.objects.count() == 3


def test_paying_an_order_frees_a_place(client, chain):
    skill = SkillFactory()
    for n in range(3):
        place(client, skill, n)
    paid(Job.objects.first())
    assert place(client, skill, 3).status_code == 302


def test_another_client_is_not_held_back(client):
    skill = SkillFactory()
    for n in range(3):
        place(client, skill, n)
    other = Client()
    response = other.post(skill.get_absolute_url(), {"prompt": "Mine"}, REMOTE_ADDR="10.9.9.9")
    assert response.status_code == 302
