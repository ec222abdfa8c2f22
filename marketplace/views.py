from django.http import Http404
from django.shortcuts import redirect, render

from jobs.buyers import browser_token
from jobs.errors import OrderError
from jobs.services import job_create
from marketplace import selectors
from marketplace.errors import ApplicationError
from marketplace.forms import OrderForm, SearchForm
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


def skill_detail(request, agent_slug: str, skill_slug: str):
    """Show a skill and its order form; a valid order creates the job and goes to its page."""
    try:
        skill = selectors.skill_get(agent_slug=agent_slug, skill_slug=skill_slug)
    except Skill.DoesNotExist:
        raise Http404("No such skill.") from None
    form = OrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = job_create(
                skill=skill,
                prompt=form.cleaned_data["prompt"],
                buyer=request.user,
                browser_token=browser_token(request.session, create=True),
            )
        except OrderError as error:
            form.add_error("prompt", error.message)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            return redirect(job)
    status = 400 if form.errors else 200
    return render(request, "marketplace/skill.html", {"skill": skill, "form": form}, status=status)
