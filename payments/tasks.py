"""Celery tasks for payments, run by beat. Names are fixed strings."""

from celery import shared_task


@shared_task(name="payments.scan_transfers", queue="payments", ignore_result=True)
def scan_transfers() -> int:
    from payments.services import payments_scan

    return payments_scan()


@shared_task(name="payments.recheck_pending", queue="payments", ignore_result=True)
def recheck_pending() -> int:
    from payments.services import payments_recheck

    return payments_recheck()


@shared_task(name="payments.expire_invoices", queue="payments", ignore_result=True)
def expire_invoices() -> int:
    from payments.services import invoices_expire

    return invoices_expire()
