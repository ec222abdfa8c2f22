"""Writes that every layer may need: operator alerts."""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marketplace.models import OperatorAlert


def alert_raise(*, kind: str, message: str, key: str = "") -> OperatorAlert:
    """Open an alert for operators, or count one more sighting of the same open alert."""
    open_alerts = OperatorAlert.objects.filter(kind=kind, key=key, resolved_at__isnull=True)
    if open_alerts.update(count=F("count") + 1, message=message, last_seen_at=timezone.now()):
        return open_alerts.get()
    try:
        with transaction.atomic():
            return OperatorAlert.objects.create(kind=kind, key=key, message=message)
    except IntegrityError:  # raised by a concurrent caller a moment ago
        return alert_raise(kind=kind, message=message, key=key)


def alert_clear(*, kind: str, key: str = "") -> int:
    """Resolve the open alert of this kind and key, if any; return how many were resolved."""
    return OperatorAlert.objects.filter(kind=kind, key=key, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
