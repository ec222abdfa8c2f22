"""The jobs in the console: why a job failed and why its payment was refused, as columns; links
between a job, its invoice and its transfers; Retry and Refund on the job's page; a provider's
job page grouped, with the money and the output as the buyer reads it."""

import pytest
from django.urls import reverse

from jobs.generation import job_generate
from jobs.models import Job
from tests.conftest import complete, log_in, paid, submit
from tests.factories import ProviderFactory, SkillFactory, order

pytestmark = pytest.mark.django_db


def failed_job(stub, skill=None) -> Job:
    stub.script("status:400")
    job = paid(order(skill))
    job_generate(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    return job


def job_page(client, job) -> str:
    response = client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


# ------------------------------------------------------------------------------
# The list
# ------------------------------------------------------------------------------


def test_the_job_list_shows_why_a_job_failed(client, operator, stub):
    job = failed_job(stub)

    page = client.get(reverse("admin:jobs_job_changelist")).content.decode()

    assert job.error and job.error in page


def test_the_job_list_shows_why_a_payment_was_rejected(client, operator, chain):
    job = order()
    submit(job, chain.transfer(job.invoice.amount_units, token=chain.lookalike))

    page = client.get(reverse("admin:jobs_job_changelist")).content.decode()

    assert "lookalike:" in page


def test_a_provider_reads_a_refused_payments_code_never_its_sender(client, chain):
    provider = ProviderFactory()
    job = order(SkillFactory(agent__owner=provider))
    submit(job, chain.transfer(job.invoice.amount_units, token=chain.lookalike))
    log_in(client, provider)

    page = client.get(reverse("admin:jobs_job_changelist")).content.decode()

    assert "lookalike" in page
    assert job.invoice.submissions.get().reason not in page


def test_the_job_list_makes_a_fixed_number_of_queries(
    client, operator, chain, django_assert_max_num_queries
):
    def count_queries(jobs: int) -> None:
        for _ in range(jobs):
            job = order()
            submit(job, chain.transfer(job.invoice.amount_units, token=chain.lookalike))
        with django_assert_max_num_queries(11):
            assert client.get(reverse("admin:jobs_job_changelist")).status_code == 200

    count_queries(1)
    count_queries(6)


# ------------------------------------------------------------------------------
# Links between a job, its invoice and its transfers
# ------------------------------------------------------------------------------


def test_the_job_page_links_its_invoice_and_its_transfers(client, operator, chain):
    job = complete(order(), chain)
    payment = job.invoice.payments.get()

    page = job_page(client, job)

    assert reverse("admin:payments_invoice_change", args=[job.invoice.pk]) in page
    assert reverse("admin:payments_payment_change", args=[payment.pk]) in page


def test_the_invoice_and_the_payment_link_back_to_the_job(client, operator, chain):
    job = complete(order(), chain)
    payment = job.invoice.payments.get()
    to_job = reverse("admin:jobs_job_by_reference", args=[job.invoice.reference])

    invoice_page = client.get(reverse("admin:payments_invoice_change", args=[job.invoice.pk]))
    payment_page = client.get(reverse("admin:payments_payment_change", args=[payment.pk]))

    assert to_job in invoice_page.content.decode()
    assert to_job in payment_page.content.decode()
    assert client.get(to_job).url == reverse("admin:jobs_job_change", args=[job.pk])


# ------------------------------------------------------------------------------
# Retry and Refund on the job's page
# ------------------------------------------------------------------------------


def test_an_operator_retries_a_failed_job_from_its_page(client, operator, stub):
    job = failed_job(stub)
    assert 'id="job-retry"' in job_page(client, job)

    response = client.post(reverse("admin:jobs_job_retry", args=[job.pk]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.PAID


def test_an_operator_refunds_a_completed_job_from_its_page(client, operator, chain):
    job = complete(order(), chain)
    assert 'id="job-refund"' in job_page(client, job)
    assert 'id="job-retry"' not in job_page(client, job)

    client.post(reverse("admin:jobs_job_refund", args=[job.pk]))

    job.refresh_from_db()
    assert job.status == Job.Status.REFUNDED


def test_retry_refuses_a_get(client, operator, stub):
    job = failed_job(stub)

    assert client.get(reverse("admin:jobs_job_retry", args=[job.pk])).status_code == 405
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED


def test_a_provider_has_neither_button_nor_the_right(client, stub):
    provider = ProviderFactory()
    job = failed_job(stub, SkillFactory(agent__owner=provider))
    log_in(client, provider)

    page = job_page(client, job)
    response = client.post(reverse("admin:jobs_job_retry", args=[job.pk]))

    assert 'id="job-retry"' not in page
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED


def test_the_buttons_check_the_csrf_token(operator, stub):
    from django.test import Client

    job = failed_job(stub)
    strict = Client(enforce_csrf_checks=True)
    log_in(strict, operator)

    response = strict.post(reverse("admin:jobs_job_retry", args=[job.pk]))

    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED


# ------------------------------------------------------------------------------
# A provider's job page
# ------------------------------------------------------------------------------


def test_a_providers_job_page_groups_the_summary_input_output_and_internals(client, chain):
    provider = ProviderFactory()
    job = complete(
        order(SkillFactory(agent__owner=provider)), chain, text="## Findings\n\n- *one*\n- two"
    )
    log_in(client, provider)

    page = job_page(client, job)

    headings = ["Summary", "Input", "Output", "Internals"]
    positions = [page.index(f">{heading}<") for heading in headings]
    assert positions == sorted(positions)
    # The output rendered as on the public page, never the raw Markdown.
    assert "<h2>Findings</h2>" in page and "<em>one</em>" in page
    # The money: what the buyer paid and the provider's share, settled.
    invoice = job.invoice
    assert "Buyer paid" in page
    assert f"{int(invoice.share_units) / 10**6:.6f} USDC, held" in page
    # Internals are collapsed; the buyer is not there at all.
    assert 'class="module aligned collapse"' in page
    assert "field-buyer" not in page


def test_a_providers_job_page_never_links_to_the_invoice(client, chain):
    provider = ProviderFactory()
    job = complete(order(SkillFactory(agent__owner=provider)), chain)
    log_in(client, provider)

    page = job_page(client, job)

    assert reverse("admin:payments_invoice_change", args=[job.invoice.pk]) not in page
    assert "Invoice and payments" not in page


def test_a_providers_job_page_lists_only_the_timestamps_that_happened(client):
    provider = ProviderFactory()
    job = order(SkillFactory(agent__owner=provider))
    log_in(client, provider)

    page = job_page(client, job)

    assert "Refunded at" not in page and "Disputed at" not in page
