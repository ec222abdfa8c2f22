"""The one hook by which `payments` tells the layer above what happened to an invoice.

`invoice_event` is sent inside the database transaction that changed the invoice, with its row
locked, so a receiver's writes commit (or roll back) with the change. `payments` never knows
what an invoice is for; the receiver (jobs) decides what the event means for its job.
"""

from django.db import models
from django.dispatch import Signal


class InvoiceEvent(models.TextChoices):
    # A transfer towards the invoice was seen on chain (it may still wait for confirmations).
    PAYMENT_SEEN = "payment_seen", "Payment seen"
    # Confirmed transfers cover the amount.
    PAID = "paid", "Paid"
    # A reorganisation took back a payment of a paid invoice: it is owed again.
    UNPAID = "unpaid", "Owed again"
    EXPIRED = "expired", "Expired"
    # Money arrived after the invoice closed; it goes back to its sender.
    PAID_LATE = "paid_late", "Paid late"
    # A payment the invoice counted was taken off the chain.
    PAYMENT_REVERTED = "payment_reverted", "Payment reverted"
    # Money on the invoice is on its way back to its sender.
    REFUNDED = "refunded", "Refund queued"


# Keyword arguments: invoice (locked), kind (an InvoiceEvent), message, payment (or None).
invoice_event = Signal()


def send(invoice, kind: str, message: str = "", payment=None) -> None:
    invoice_event.send(
        sender=type(invoice), invoice=invoice, kind=kind, message=message, payment=payment
    )
