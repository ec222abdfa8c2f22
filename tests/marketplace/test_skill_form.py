"""The skill form in the admin: every error on its field, once; schemas that cannot work are
refused with a message, never a 500; the form says who sees each field."""

import json
import re

import pytest
from django.urls import reverse

from marketplace.models import Skill
from marketplace.schemas import SchemaRefused, check_json_schema
from tests.factories import (
    AgentFactory,
    JsonSkillFactory,
    SkillFactory,
    skill_form_data,
)

pytestmark = pytest.mark.django_db


def add(client, provider, **changes):
    """Post the add form of a valid new skill of the provider's agent, with `changes`."""
    agent = AgentFactory(owner=provider)
    template = SkillFactory.build(agent=agent, slug="new-skill", service_key="new-skill")
    return client.post(reverse("admin:marketplace_skill_add"), skill_form_data(template, **changes))


def field_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {name: list(errors) for name, errors in form.errors.items()}


# ------------------------------------------------------------------------------
# The JSON schema
# ------------------------------------------------------------------------------


def test_a_schema_of_42_is_refused_on_its_field(client, provider):
    errors = field_errors(add(client, provider, output_format="json", json_schema="42"))

    assert errors.keys() == {"json_schema"}
    assert "JSON object" in errors["json_schema"][0]
    assert "a number (42)" in errors["json_schema"][0]


def test_a_schema_of_false_is_refused_as_accepting_nothing(client, provider):
    errors = field_errors(add(client, provider, output_format="json", json_schema="false"))

    assert errors.keys() == {"json_schema"}
    assert "accepts no answer" in errors["json_schema"][0]
    assert not Skill.objects.filter(slug="new-skill").exists()


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"not": {}}, '"not"'),
        ({"enum": []}, "enum"),
        ({"type": "string"}, "top-level type"),
        ({"type": ["number", "null"]}, "top-level type"),
        (
            {"type": "object", "required": ["a"], "properties": {"a": False}},
            'property "a"',
        ),
        ({"allOf": [{"type": "object"}, False]}, "allOf"),
        ({"anyOf": [False, {"enum": []}]}, "anyOf"),
    ],
)
def test_a_schema_no_answer_can_satisfy_is_refused(schema, reason):
    with pytest.raises(SchemaRefused) as refused:
        check_json_schema(schema)

    assert "No answer can satisfy" in refused.value.message
    assert reason in refused.value.message


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},
        {"type": ["object", "null"]},
        {"type": "array", "items": {"type": "string"}},
        {"anyOf": [False, {"type": "object"}]},
        {"type": "object", "properties": {"a": False}},  # "a" may be absent
    ],
)
def test_a_schema_some_answer_satisfies_is_accepted(schema):
    check_json_schema(schema)


def test_the_schema_shows_pretty_printed_in_a_monospace_box(client, provider):
    skill = JsonSkillFactory(agent__owner=provider)

    page = client.get(reverse("admin:marketplace_skill_change", args=[skill.pk])).content.decode()

    textarea = re.search(r'<textarea[^>]*name="json_schema"[^>]*>(.*?)</textarea>', page, re.S)
    assert "vendo-json" in textarea.group(0)
    shown = textarea.group(1)
    assert "\n  &quot;type&quot;: &quot;object&quot;," in shown
    assert json.loads(shown.replace("&quot;", '"')) == skill.json_schema


def test_a_refused_schema_keeps_what_was_typed(client, provider):
    typed = '{"type": "object",\n  "required": ["a"], "properties": {"a": false}}'
    response = add(client, provider, output_format="json", json_schema=typed)

    assert "json_schema" in field_errors(response)
    assert "required" in response.context["adminform"].form["json_schema"].value()


# ------------------------------------------------------------------------------
# Every error on its field, once
# ------------------------------------------------------------------------------


def test_a_price_with_seven_decimals_gets_only_the_decimal_places_message(client, provider):
    errors = field_errors(add(client, provider, price="1.2345678"))

    assert errors.keys() == {"price"}
    assert len(errors["price"]) == 1
    assert "6 decimal places" in errors["price"][0]


def test_a_duplicate_slug_is_reported_on_the_slug_field(client, provider):
    agent = AgentFactory(owner=provider)
    taken = SkillFactory(agent=agent, slug="taken", service_key="taken-key")
    template = SkillFactory.build(agent=agent)

    response = client.post(
        reverse("admin:marketplace_skill_add"),
        skill_form_data(template, slug=taken.slug, service_key=taken.service_key),
    )

    errors = field_errors(response)
    assert errors.keys() == {"slug", "service_key"}
    assert "slug" in errors["slug"][0]
    assert "API name" in errors["service_key"][0]
    assert not response.context["adminform"].form.non_field_errors()


def test_the_same_slug_under_another_agent_is_fine(client, provider):
    SkillFactory(slug="new-skill")

    assert add(client, provider).status_code == 302


# ------------------------------------------------------------------------------
# What the form shows
# ------------------------------------------------------------------------------


def test_the_model_is_a_choice_of_the_allowed_models(client, provider, settings):
    page = client.get(reverse("admin:marketplace_skill_add")).content.decode()

    select = re.search(r'<select name="model".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]+)"', select) == list(settings.ALLOWED_MODELS)


def test_every_field_says_who_sees_it(client, provider):
    form = client.get(reverse("admin:marketplace_skill_add")).context["adminform"].form

    assert form.fields["system_prompt"].help_text.startswith("Private")
    assert form.fields["json_schema"].help_text.startswith("Private")
    for public in ("name", "description", "price", "model", "output_format", "category"):
        assert form.fields[public].help_text.startswith("Public"), public


def test_the_service_key_is_called_api_name(client, provider):
    page = client.get(reverse("admin:marketplace_skill_add")).content.decode()

    assert "API name" in page
    assert "Service key" not in page


def test_the_add_form_has_no_history_section_and_the_change_form_has(client, provider):
    skill = SkillFactory(agent__owner=provider)

    add_page = client.get(reverse("admin:marketplace_skill_add")).content.decode()
    change_page = client.get(reverse("admin:marketplace_skill_change", args=[skill.pk]))

    assert ">History<" not in add_page
    assert ">History<" in change_page.content.decode()


def test_prices_show_with_two_decimals_in_the_form(client, provider):
    skill = SkillFactory(agent__owner=provider)  # 1.250000 stored

    form = (
        client.get(reverse("admin:marketplace_skill_change", args=[skill.pk]))
        .context["adminform"]
        .form
    )

    assert form["price"].value() == "1.25"


def test_the_form_loads_the_script_that_shows_one_pricing_mode(client, provider):
    page = client.get(reverse("admin:marketplace_skill_add")).content.decode()

    assert "vendo_admin/skill_form.js" in page
    assert "<script>" not in page  # nothing inline: the CSP forbids it
