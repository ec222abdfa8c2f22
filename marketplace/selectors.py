"""Reads for the catalog pages. Each returns a queryset with a constant number of queries."""

from itertools import groupby

from django.db.models import Q, QuerySet

from marketplace.models import Agent, OperatorAlert, Skill


def skill_list(*, query: str = "", category: str = "", agent: Agent | None = None) -> QuerySet:
    """Return the listed skills (live and active) matching a search, a category or an agent."""
    skills = Skill.objects.listed().select_related("agent")
    if agent is not None:
        skills = skills.filter(agent=agent)
    if category:
        skills = skills.filter(category=category)
    for word in query.split()[:8]:
        skills = skills.filter(
            Q(name__icontains=word)
            | Q(description__icontains=word)
            | Q(agent__name__icontains=word)
        )
    return skills.order_by("category", "name")


def skills_by_category(skills) -> list[tuple[str, list[Skill]]]:
    """Group skills (ordered by category) as (category label, skills) pairs."""
    labels = dict(Skill.Category.choices)
    return [
        (labels.get(category, category), list(group))
        for category, group in groupby(skills, key=lambda skill: skill.category)
    ]


def agent_get(*, slug: str) -> Agent:
    return Agent.objects.active().get(slug=slug)


def skill_get(*, agent_slug: str, skill_slug: str) -> Skill:
    return (
        Skill.objects.listed().select_related("agent").get(agent__slug=agent_slug, slug=skill_slug)
    )


def alerts_open(*, limit: int = 10) -> list[OperatorAlert]:
    """Return the open operator alerts, the most recently seen first."""
    return list(OperatorAlert.objects.filter(resolved_at__isnull=True)[:limit])
