"""Celery tasks for payments. Names are fixed strings: a contract with messages already queued.

Periodic chain work runs from beat. When the node is out of reach a task logs one warning and
backs off: later runs are skipped, for twice as long each time, until a run gets through.
"""

import logging
import random
import time

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from payments.chain import ChainError

logger = logging.getLogger(__name__)
BACKOFF_MAX_SECONDS = 300


def _with_backoff(name: str, service) -> int:
    """Run a periodic chain job unless it is backing off; back off further if the node fails.

    The backoff lives in the cache; with the cache down, the job simply runs every period.
    """
    key = f"chain-backoff:{name}"
    state = _cache_call(cache.get, key)
    if state and time.time() < state["until"]:
        return 0
    try:
        result = service()
    except ChainError as error:
        seconds = min((state or {}).get("seconds", 1) * 2, BACKOFF_MAX_SECONDS)
        _cache_call(cache.set, key, {"seconds": seconds, "until": time.time() + seconds}, None)
        logger.warning("%s: the chain node failed (%s); next try in %d s.", name, error, seconds)
        return 0
    if state:
        _cache_call(cache.delete, key)
        logger.info("%s: the chain node answers again.", name)
    return result


def _cache_call(method, *args):
    try:
        return method(*args)
    except Exception:  # the cache server is down: no backoff, nothing lost
        return None


@shared_task(name="payments.scan_transfers")
def scan_transfers() -> int:
    from payments.services.watcher import payments_scan

    return _with_backoff("scan", payments_scan)


@shared_task(name="payments.recheck_pending")
def recheck_pending() -> int:
    from payments.services.watcher import payments_recheck

    return _with_backoff("recheck", payments_recheck)


@shared_task(name="payments.expire_invoices")
def expire_invoices() -> int:
    from payments.services.watcher import invoices_expire

    return _with_backoff("expire", invoices_expire)


@shared_task(name="payments.advance_transfers")
def advance_transfers() -> int:
    from payments.services.transfers import transfers_advance

    return _with_backoff("transfers", transfers_advance)


@shared_task(name="payments.refund_unmatched")
def refund_unmatched() -> int:
    from payments.services.settlement import unmatched_refund_due

    return unmatched_refund_due()


@shared_task(name="payments.queue_payouts")
def queue_payouts() -> int:
    from payments.services.settlement import payouts_queue

    return _with_backoff("payouts", payouts_queue)


@shared_task(name="payments.check_ledger")
def check_ledger() -> bool:
    from payments.services.reconciliation import ledger_watch

    check = _with_backoff("ledger", ledger_watch)
    return bool(check and check.ok)


@shared_task(bind=True, name="payments.send_transfer", max_retries=None)
def send_transfer(self, transfer_id: int) -> str:
    """Sign (once) and broadcast one outgoing transfer; beat's advance_transfers retries."""
    from payments.services.transfers import transfer_send

    try:
        return transfer_send(transfer_id=transfer_id)
    except ChainError as error:
        # The transfer is safe in its row (signed or not): advance_transfers picks it up.
        logger.warning("Transfer %s waits for the chain node: %s", transfer_id, error)
        return "waiting"
    except (OperationalError, InterfaceError) as error:
        raise self.retry(countdown=random.uniform(1, 5), exc=error) from error
