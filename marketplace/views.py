from django.http import Http404
from django.shortcuts import render

from marketplace import selectors
from marketplace.forms import SearchForm
from marketplace.models import Agent, Skill


def catalog(request):
    form = SearchForm(request.GET)
    query = category = ""
    if form.is_valid():
        query, category = form.cleaned_data["q"], form.cleaned_data["category"]
    skills = selectors.skill_list(query=query, category=category)
    return render(
        request,
        "marketplace/catalog.html",
        {
            "groups": selectors.skills_by_category(skills),
            "query": query,
            "category": category,
            "categories": Skill.Category.choices,
        },
    )


def agent_detail(request, agent_slug: str):
    try:
        agent = selectors.agent_get(slug=agent_slug)
    except Agent.DoesNotExist:
        raise Http404("No such agent.") from None
    skills = selectors.skill_list(agent=agent)
    return render(request, "marketplace/agent.html", {"agent": agent, "skills": skills})
