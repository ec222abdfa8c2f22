"""What a provider saves is bounded in Skill.clean(): the admin, the API and fixtures refuse it."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from marketplace.models import MAX_DESCRIPTION_CHARS, MAX_SYSTEM_PROMPT_CHARS, Skill
from tests.factories import JsonSkillFactory, ProviderFactory, SkillFactory, skill_form_data

pytestmark = pytest.mark.django_db


def refused_fields(skill: Skill) -> dict[str, list[str]]:
    """Return full_clean()'s errors per field ({} when the skill is accepted)."""
    try:
        skill.full_clean()
    except ValidationError as error:
        return error.message_dict
    return {}


def json_skill(schema) -> Skill:
    return JsonSkillFactory(json_schema=schema)


def test_a_valid_skill_is_accepted():
    assert refused_fields(SkillFactory()) == {}
    assert refused_fields(JsonSkillFactory()) == {}


def test_an_unknown_model_is_refused():
    refused = refused_fields(SkillFactory(model="gpt-free-proxy"))

    assert "claude-sonnet-4-5" in refused["model"][0]


def test_more_output_tokens_than_the_model_writes_are_refused():
    refused = refused_fields(SkillFactory(model="claude-opus-4-1", max_output_tokens=1_000_000))

    assert "32,000" in refused["max_output_tokens"][0]


def test_a_free_skill_is_refused():
    # Price 0 would make the skill a free proxy to the platform's Anthropic key.
    assert "price" in refused_fields(SkillFactory(price=Decimal("0")))


def test_a_fixed_price_below_one_runs_cost_is_refused():
    # 32,000 output tokens of claude-opus-4-1 cost the platform 2.40 USDC.
    skill = SkillFactory(model="claude-opus-4-1", max_output_tokens=32_000, price=Decimal("2.39"))

    assert "2.40 USDC" in refused_fields(skill)["price"][0]
    skill.price = Decimal("2.40")
    assert refused_fields(skill) == {}


def test_a_per_1k_price_below_the_models_cost_is_refused():
    skill = SkillFactory(
        model="claude-sonnet-4-5",
        pricing=Skill.Pricing.PER_1K_TOKENS,
        price=None,
        price_per_1k=Decimal("0.001"),
        min_price=Decimal("0"),
    )

    assert "0.015" in refused_fields(skill)["price_per_1k"][0]


def test_a_price_the_database_cannot_quote_is_refused():
    # This price per 1k made every order a 500: the quote overflowed numeric(18, 6).
    skill = SkillFactory.build(
        pricing=Skill.Pricing.PER_1K_TOKENS,
        price=None,
        price_per_1k=Decimal("999999999999.999999"),
        min_price=Decimal("999999999999.999999"),
    )

    refused = refused_fields(skill)

    assert {"price_per_1k", "min_price"} <= set(refused)


def test_an_overlong_system_prompt_and_description_are_refused():
    skill = SkillFactory.build(
        system_prompt="x" * (MAX_SYSTEM_PROMPT_CHARS + 1),
        description="x" * (MAX_DESCRIPTION_CHARS + 1),
    )

    assert {"system_prompt", "description"} <= set(refused_fields(skill))


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"type": "object", "properties": {"next": {"$ref": "#"}}},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"allOf": [{"$ref": "#/allOf/0"}]},
    ],
    ids=["self", "through-a-property", "two-definitions", "allOf"],
)
def test_a_schema_whose_refs_form_a_cycle_is_refused(schema):
    assert "cycle" in refused_fields(json_skill(schema))["json_schema"][0]


@pytest.mark.parametrize(
    "ref",
    ["https://evil.example/schema.json", "other.json", "//evil.example/s", "#anchor"],
)
def test_a_schema_with_a_remote_or_non_pointer_ref_is_refused(ref):
    assert "json_schema" in refused_fields(json_skill({"$ref": ref}))


def test_a_schema_ref_to_nothing_is_refused():
    refused = refused_fields(json_skill({"$ref": "#/$defs/missing"}))

    assert "points to nothing" in refused["json_schema"][0]


def test_local_refs_without_a_cycle_are_accepted():
    schema = {
        "$defs": {
            "tag": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        },
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/tags"}, "b": {"$ref": "#/$defs/tag"}},
    }

    assert refused_fields(json_skill(schema)) == {}


def test_a_schema_pattern_the_linear_engine_cannot_run_is_refused():
    refused = refused_fields(json_skill({"type": "string", "pattern": "^(?=a)a+$"}))

    assert "lookaround" in refused["json_schema"][0]


def test_an_oversized_or_overdeep_schema_is_refused():
    big = {"type": "string", "enum": ["x" * 100] * 300}
    deep: dict = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}

    assert "json_schema" in refused_fields(json_skill(big))
    assert "json_schema" in refused_fields(json_skill(deep))


def test_a_schema_that_is_not_a_json_schema_is_refused():
    assert "json_schema" in refused_fields(json_skill({"type": 12}))


# ------------------------------------------------------------------------------
# The admin form
# ------------------------------------------------------------------------------


@pytest.fixture
def provider_client(client):
    provider = ProviderFactory()
    client.force_login(type(provider)._default_manager.get(pk=provider.pk))
    client.provider = provider
    return client


def test_the_admin_offers_the_model_as_a_choice_of_allowed_models(provider_client, settings):
    response = provider_client.get(reverse("admin:marketplace_skill_add"))

    choices = [value for value, _ in response.context["adminform"].form.fields["model"].choices]
    assert choices == list(settings.ALLOWED_MODELS)


def test_the_admin_refuses_a_free_skill_with_a_message_on_the_price(provider_client):
    skill = SkillFactory(agent__owner=provider_client.provider)

    response = provider_client.post(
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        skill_form_data(skill, price="0"),
    )

    assert response.status_code == 200
    assert "price" in response.context["adminform"].form.errors
    skill.refresh_from_db()
    assert skill.price == Decimal("1.25")


def test_the_admin_refuses_a_deeply_nested_schema_without_parsing_it(provider_client):
    skill = JsonSkillFactory(agent__owner=provider_client.provider)

    response = provider_client.post(
        reverse("admin:marketplace_skill_change", args=[skill.pk]),
        skill_form_data(skill, json_schema="[" * 80_000 + "]" * 80_000),
    )

    assert response.status_code == 200
    assert "json_schema" in response.context["adminform"].form.errors


# ------------------------------------------------------------------------------
# The demo catalog
# ------------------------------------------------------------------------------


def test_the_demo_catalog_validates(settings):
    settings.DEBUG = True

    call_command("seed_demo", stdout=StringIO())

    skills = list(Skill.objects.all())
    assert len(skills) == 8
    for skill in skills:
        skill.full_clean()


# ------------------------------------------------------------------------------
# Orders
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written_around_the_admin",
    [{"price": Decimal("0")}, {"model": "any-model"}, {"max_output_tokens": 10_000_000}],
)
def test_a_skill_stored_around_the_rules_takes_no_orders(client, written_around_the_admin):
    # A fixture or a raw update skips the admin's form; ordering must not skip the rules.
    skill = SkillFactory()
    Skill.objects.filter(pk=skill.pk).update(**written_around_the_admin)

    response = client.post(skill.get_absolute_url(), {"prompt": "Free answers, please."})

    assert response.status_code == 400
    assert b"not available right now" in response.content
    assert not skill.jobs.exists()
