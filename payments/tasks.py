"""Celery tasks for payments, run by beat. Names are fixed strings."""

import logging

from celery import shared_task

from payments.chain import ChainError

logger = logging.getLogger(__name__)


@shared_task(name="payments.scan_transfers")
def scan_transfers() -> int:
    from payments.services import payments_scan

    return _while_chain_answers(payments_scan)


@shared_task(name="payments.recheck_pending")
def recheck_pending() -> int:
    from payments.services import payments_recheck

    return _while_chain_answers(payments_recheck)


@shared_task(name="payments.expire_invoices")
def expire_invoices() -> int:
    from payments.services import invoices_expire

    return invoices_expire()


def _while_chain_answers(service) -> int:
    """Run a periodic chain read; a node that is down is a warning, retried next period."""
    try:
        return service()
    except ChainError as error:
        logger.warning("%s skipped: %s", service.__name__, error.message)
        return 0
