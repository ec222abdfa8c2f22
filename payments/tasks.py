"""Celery tasks for payments, run by beat. Names are fixed strings."""

from celery import shared_task


@shared_task(name="payments.scan_transfers")
def scan_transfers() -> int:
    from payments.services import payments_scan

    return payments_scan()


@shared_task(name="payments.recheck_pending")
def recheck_pending() -> int:
    from payments.services import payments_recheck

    return payments_recheck()


@shared_task(name="payments.expire_invoices")
def expire_invoices() -> int:
    from payments.services import invoices_expire

    return invoices_expire()
