from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from jobs.services import job_create
from marketplace.models import Agent, Skill
from marketplace.permissions import provider_group_sync
from payments.devchain import ANVIL_ACCOUNTS


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ProviderFactory(UserFactory):
    username = factory.Sequence(lambda n: f"provider{n}")
    is_staff = True

    @factory.post_generation
    def providers_group(self, create, extracted, **kwargs):
        if create:
            self.groups.add(provider_group_sync())


class OperatorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True
    is_superuser = True


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    owner = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    slug = factory.Sequence(lambda n: f"agent-{n}")
    description = "Does careful work."
    payout_address = ANVIL_ACCOUNTS[5][0]


class SkillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Skill

    agent = factory.SubFactory(AgentFactory)
    name = factory.Sequence(lambda n: f"Skill {n}")
    slug = factory.Sequence(lambda n: f"skill-{n}")
    service_key = factory.LazyAttribute(lambda skill: skill.slug)
    category = Skill.Category.WRITING
    description = "Turns your notes into a clear summary."
    system_prompt = "Summarise the user's text in three bullets."
    model = "claude-haiku-4-5"
    max_output_tokens = 400
    price = Decimal("1.250000")
    # Live, as if published after a test run: most tests are about ordering it.
    status = Skill.Status.LIVE


class DraftSkillFactory(SkillFactory):
    """A skill as a provider's first save leaves it: a draft, absent from the catalog."""

    status = Skill.Status.DRAFT


class JsonSkillFactory(SkillFactory):
    output_format = Skill.OutputFormat.JSON
    json_schema = {
        "type": "object",
        "required": ["title", "tags"],
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }


def order(skill=None, prompt: str = "Summarise: the quick brown fox.", **kwargs):
    """Order a skill through the real service: a job with its invoice on the test chain."""
    return job_create(skill=skill or SkillFactory(), prompt=prompt, **kwargs)


def skill_form_data(skill: Skill, **changes) -> dict:
    """What the admin's skill form posts for `skill` as it is, with `changes`."""
    data = {
        "agent": skill.agent_id,
        "name": skill.name,
        "slug": skill.slug,
        "service_key": skill.service_key,
        "category": skill.category,
        "description": skill.description,
        "is_active": "on",
        "system_prompt": skill.system_prompt,
        "model": skill.model,
        "max_output_tokens": skill.max_output_tokens,
        "output_format": skill.output_format,
        "json_schema": "",
        "pricing": skill.pricing,
        "price": str(skill.price),
        "price_per_1k": "",
        "min_price": "",
        "estimated_seconds": skill.estimated_seconds,
        "payment_mode": "",
    }
    return {**data, **changes}
