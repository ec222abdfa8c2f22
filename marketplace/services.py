"""Writes to the catalog (a skill's lifecycle: draft, tested, live) and operator alerts."""

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from marketplace.errors import SkillNotReady
from marketplace.models import OperatorAlert, Skill

# ------------------------------------------------------------------------------
# Skills: draft -> live
# ------------------------------------------------------------------------------


def skill_save(*, skill: Skill) -> bool:
    """Save a provider's skill; return True if it went back to draft.

    A live skill whose prompt, model, output format or schema changed is a version nobody has
    tested: it leaves the catalog until a test run passes and it is published again.
    """
    unpublished = False
    if skill.pk is not None and skill.status == Skill.Status.LIVE:
        stored = Skill.objects.filter(pk=skill.pk).values_list("fingerprint", flat=True).first()
        if stored != skill.compute_fingerprint():
            skill.status, skill.published_at = Skill.Status.DRAFT, None
            unpublished = True
    skill.save()
    return unpublished


def skill_record_test(*, skill_id: int, fingerprint: str) -> bool:
    """A test run completed on the version `fingerprint`: record it, if that version is still
    the skill's (it may have changed while the test ran); return whether it was recorded."""
    return bool(
        Skill.objects.filter(pk=skill_id, fingerprint=fingerprint).update(
            tested_fingerprint=fingerprint
        )
    )


def skill_publish(*, skill: Skill) -> Skill:
    """Put a draft in the catalog; refuse it unless a test run passed on the version saved."""
    fresh = Skill.objects.select_related("agent").get(pk=skill.pk)
    if fresh.status == Skill.Status.LIVE:
        return fresh
    if not fresh.is_tested:
        raise SkillNotReady(
            "Publish needs a passing test run of this version: the prompt, model, output "
            "format or schema changed since the last one, or none has completed yet. Start a "
            "test run, and publish once it completes."
        )
    published = Skill.objects.filter(
        pk=fresh.pk,
        status=Skill.Status.DRAFT,
        fingerprint=fresh.fingerprint,
        tested_fingerprint=fresh.fingerprint,
    ).update(status=Skill.Status.LIVE, published_at=timezone.now())
    if not published:
        raise SkillNotReady("The skill changed meanwhile: look at it again, then publish.")
    fresh.refresh_from_db()
    return fresh


def skill_unpublish(*, skill: Skill) -> Skill:
    """Take a live skill out of the catalog, back to draft (its jobs stay)."""
    Skill.objects.filter(pk=skill.pk).update(status=Skill.Status.DRAFT, published_at=None)
    skill.refresh_from_db()
    return skill


def skills_set_active(*, skills: QuerySet, active: bool) -> int:
    """Activate or deactivate skills (an inactive skill is out of the catalog); return how
    many changed."""
    return skills.exclude(is_active=active).update(is_active=active, updated_at=timezone.now())


# ------------------------------------------------------------------------------
# Operator alerts
# ------------------------------------------------------------------------------


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
