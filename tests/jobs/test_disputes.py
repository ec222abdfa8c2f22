"""Disputes: the buyer (whoever holds the job's link) disputes a completed job within its
window; the provider sees it on its job; an operator decides it."""

from decimal import Decimal

import pytest
from django.urls import reverse

from jobs.models import Dispute, Job
from marketplace.models import PaymentMode
from tests.conftest import complete
from tests.factories import OperatorFactory, ProviderFactory, SkillFactory, order

pytestmark = pytest.mark.django_db


def dispute_url(job) -> str:
    return reverse("jobs:dispute", args=[job.public_id])


def test_the_buyer_disputes_a_completed_job_with_a_reason(client, chain):
    job = complete(order(), chain)
    page = client.get(job.get_absolute_url()).content.decode()
    assert 'id="open-dispute"' in page

    response = client.post(dispute_url(job), {"reason": "It summarised the wrong text."})

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.DISPUTED
    assert job.dispute.reason == "It summarised the wrong text."
    status = client.get(reverse("jobs:status", args=[job.public_id])).json()
    assert status["settlement"]["dispute"]["reason"] == "It summarised the wrong text."
    assert status["settlement"]["state"] == "held"


def test_a_dispute_needs_a_reason(client, chain):
    job = complete(order(), chain)
    response = client.post(dispute_url(job), {"reason": "   "})
    assert response.status_code == 400
    assert b"Say what is wrong with the result." in response.content
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED


def test_a_job_that_is_not_completed_cannot_be_disputed(client):
    job = order()
    response = client.post(dispute_url(job), {"reason": "I have not paid yet."})
    assert response.status_code == 400
    assert not Dispute.objects.exists()


def test_a_dispute_after_its_window_closed_is_refused(client, chain, settings):
    job = complete(order(), chain)
    settings.DISPUTE_WINDOW_SECONDS = 0
    response = client.post(dispute_url(job), {"reason": "Too late."})
    assert response.status_code == 400
    assert b"can no longer be disputed" in response.content


def test_a_job_is_disputed_once(client, chain):
    job = complete(order(), chain)
    client.post(dispute_url(job), {"reason": "First."})
    response = client.post(dispute_url(job), {"reason": "Again, to hold the money longer."})
    assert response.status_code == 400
    assert Dispute.objects.filter(job=job).count() == 1


def test_the_provider_sees_the_dispute_and_its_reason_on_its_job(client, chain):
    provider = ProviderFactory()
    job = complete(order(SkillFactory(agent__owner=provider)), chain)
    client.post(dispute_url(job), {"reason": "Wrong language."})
    client.force_login(type(provider)._default_manager.get(pk=provider.pk))
    page = client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "Wrong language." in page


def test_an_operator_upholds_a_dispute_and_the_share_becomes_payable(client, chain):
    job = complete(order(SkillFactory(price=Decimal("4"))), chain)
    client.post(dispute_url(job), {"reason": "Not convinced."})
    client.force_login(OperatorFactory())
    response = client.post(
        reverse("admin:jobs_dispute_change", args=[job.dispute.pk]),
        {"refund": "0", "note": "The result answers the request."},
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.dispute.resolution == Dispute.Resolution.UPHELD
    assert job.invoice.released_at is not None
    assert job.invoice.held_units == 0


def test_a_buyer_choice_skill_asks_when_to_pay(client, chain):
    skill = SkillFactory(payment_mode=PaymentMode.BUYER_CHOICE)
    response = client.post(skill.get_absolute_url(), {"prompt": "Hello", "payment_mode": ""})
    assert response.status_code == 400
    assert b"Choose when to pay." in response.content

    client.post(skill.get_absolute_url(), {"prompt": "Hello", "payment_mode": "on_completion"})

    job = Job.objects.get()
    assert job.payment_mode == PaymentMode.ON_COMPLETION
    assert job.invoice.expires_at is None  # asked for once the result exists
