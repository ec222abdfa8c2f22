"""The providers' console. A provider sees and edits only its own rows; operators see all."""

import json
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from marketplace import jsonsafe
from marketplace.errors import ApplicationError
from marketplace.models import Agent, OperatorAlert, Skill
from marketplace.money import format_usdc
from marketplace.permissions import is_provider
from marketplace.pricing import allowed_models
from marketplace.schemas import MAX_SCHEMA_CHARS
from marketplace.services import skill_publish, skill_save, skill_unpublish, skills_set_active


class OwnedAdmin(admin.ModelAdmin):
    """Scope every path (list, change, delete, history, autocomplete, filters) to the owner.

    Django's change, delete and history views and the autocomplete endpoint all fetch through
    get_queryset(), so scoping it makes another provider's objects 404. The per-object
    permission checks say the same again, for any path that passes an object.
    """

    owner_path: str  # the lookup from this model to its owning user, e.g. "agent__owner"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_provider(request.user):
            queryset = queryset.filter(**{self.owner_path: request.user})
        return queryset

    def get_object(self, request, object_id, from_field=None):
        # Another provider's object is simply not there: 404, not the admin's "perhaps it was
        # deleted" redirect, which would confirm nothing but reads oddly.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def owns(self, request, obj) -> bool:
        if obj is None or not is_provider(request.user):
            return True
        return (
            type(obj)._default_manager.filter(pk=obj.pk, **{self.owner_path: request.user}).exists()
        )

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.owns(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.owns(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.owns(request, obj)


@admin.register(Agent)
class AgentAdmin(OwnedAdmin):
    owner_path = "owner"
    list_display = ["name", "owner", "default_payment_mode", "skill_count", "is_active"]
    list_filter = ["is_active", "default_payment_mode"]
    search_fields = ["name", "slug", "description"]
    list_select_related = ["owner"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request):
        from django.db.models import Count

        # An aggregate drops Meta.ordering, so order again for stable pages.
        return super().get_queryset(request).annotate(num_skills=Count("skills")).order_by("name")

    @admin.display(description="skills", ordering="num_skills")
    def skill_count(self, obj) -> int:
        return obj.num_skills

    def get_exclude(self, request, obj=None):
        # A provider's agents are always its own: the owner is set on save, not chosen.
        return ["owner"] if is_provider(request.user) else []

    def get_list_display(self, request):
        fields = super().get_list_display(request)
        return [f for f in fields if f != "owner"] if is_provider(request.user) else fields

    def save_model(self, request, obj, form, change):
        if is_provider(request.user):
            obj.owner = request.user
        super().save_model(request, obj, form, change)


class OptionalJSONField(forms.JSONField):
    """A JSON field that shows an empty box, not `null`, when there is no value, and the JSON
    pretty-printed (two-space indents) when there is one.

    Its text is measured before it is parsed (marketplace.jsonsafe): deeply nested input would
    otherwise crash the web process inside the json module.
    """

    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values:
            try:
                jsonsafe.check_bounds(value, max_chars=2 * MAX_SCHEMA_CHARS)
            except jsonsafe.JSONTooLarge as error:
                raise forms.ValidationError(str(error), code="too_large") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        if isinstance(data, str):
            try:
                jsonsafe.check_bounds(data, max_chars=2 * MAX_SCHEMA_CHARS)
            except jsonsafe.JSONTooLarge:
                return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)

    def prepare_value(self, value):
        if value is None:
            return ""
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class PriceField(forms.DecimalField):
    """A price in USDC, shown as the pages show it ("1.25", not "1.250000")."""

    def prepare_value(self, value):
        return format_usdc(value) if isinstance(value, Decimal) else value


def model_choices() -> list[tuple[str, str]]:
    """The models a skill may use (settings.ALLOWED_MODELS), with their limits and costs."""
    return [
        (
            name,
            f"{name} (at most {model.max_output_tokens:,} output tokens; "
            f"costs {format_usdc(model.cost_per_1k_output)} USDC per 1,000)",
        )
        for name, model in allowed_models().items()
    ]


PUBLIC = "Public: "
PRIVATE = "Private: "


class SkillForm(forms.ModelForm):
    """A provider's skill. Every help text says who sees the field; every error lands on its
    field, once."""

    model = forms.ChoiceField(
        choices=model_choices,
        help_text=PUBLIC + "shown on the skill's page. Your price must cover what the model "
        "costs the platform.",
    )
    json_schema = OptionalJSONField(
        label="JSON schema",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "vLargeTextField vendo-json"}),
        help_text=PRIVATE + "sent to the model with the prompt; buyers never see it. For JSON "
        'output only: a JSON object such as {"type": "object", "required": ["title"]}; every '
        "result must validate against it. Leave empty for no schema.",
    )

    class Meta:
        model = Skill
        # The admin's fieldsets choose the fields; this is the form's own fallback.
        fields = ["agent", "name", "slug", "service_key", "json_schema"]
        field_classes = {"price": PriceField, "price_per_1k": PriceField, "min_price": PriceField}
        help_texts = {
            "agent": "The agent that sells it; buyers see the agent's name.",
            "name": PUBLIC + "the catalog and the skill's page show it.",
            "slug": PUBLIC + "the last part of the skill's address (/agents/the-agent/the-slug/).",
            "category": PUBLIC + "where the catalog lists it.",
            "description": PUBLIC + "buyers read it on the catalog and the skill's page: say "
            "what the skill does and what to write.",
            "is_active": "Inactive skills leave the catalog and take no orders; their jobs stay. "
            "A skill is listed when it is both live (published) and active.",
            "system_prompt": PRIVATE + "sent to the model with every job; buyers and other "
            "providers never see it.",
            "max_output_tokens": PUBLIC + "the longest answer the model may write.",
            "output_format": PUBLIC + "Markdown is rendered as a page; JSON as lists and tables.",
            "pricing": PUBLIC + "a fixed price, or a price per 1,000 tokens with a minimum.",
            "price": PUBLIC + "in USDC, what every run costs the buyer.",
            "price_per_1k": PUBLIC + "in USDC, per 1,000 tokens of input and output.",
            "min_price": PUBLIC + "in USDC, the least a run costs.",
            "estimated_seconds": PUBLIC + "shown as the estimated time.",
            "payment_mode": PUBLIC + "when buyers pay. Leave blank to use the agent's default.",
        }

    def _post_clean(self):
        # A value the form itself refused (a price with 7 decimals) is not checked again by the
        # model's rules, which would see it as missing: every error once, on its field.
        refused = {name: len(errors) for name, errors in self._errors.items()}
        super()._post_clean()
        for name, count in refused.items():
            if name in self._errors:
                del self._errors[name][count:]


def _lifecycle_urls(skill: Skill) -> dict[str, str]:
    return {
        "publish": reverse("admin:marketplace_skill_publish", args=[skill.pk]),
        "unpublish": reverse("admin:marketplace_skill_unpublish", args=[skill.pk]),
    }


@admin.register(Skill)
class SkillAdmin(OwnedAdmin):
    owner_path = "agent__owner"
    form = SkillForm
    list_display = [
        "name",
        "agent",
        "status_label",
        "is_active",
        "category",
        "price_label",
        "output_format",
        "updated_at",
    ]
    list_filter = [
        ("agent", admin.RelatedOnlyFieldListFilter),
        "status",
        "is_active",
        "category",
        "output_format",
        "pricing",
    ]
    search_fields = ["name", "slug", "service_key", "description"]
    list_select_related = ["agent"]
    prepopulated_fields = {"slug": ["name"], "service_key": ["name"]}
    readonly_fields = ["created_at", "updated_at", "published_at"]
    actions = ["activate", "deactivate"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "agent",
                    "name",
                    "slug",
                    "service_key",
                    "category",
                    "description",
                    "is_active",
                ]
            },
        ),
        (
            "Generation",
            {
                "fields": [
                    "system_prompt",
                    "model",
                    "max_output_tokens",
                    "output_format",
                    "json_schema",
                ],
                "description": "A change to the prompt, the model, the output format or the "
                "schema needs a new passing test run before the skill is published; a live "
                "skill goes back to draft until then.",
            },
        ),
        (
            "Price",
            {
                "fields": [
                    "pricing",
                    "price",
                    "price_per_1k",
                    "min_price",
                    "estimated_seconds",
                    "payment_mode",
                ],
                "description": "Amounts are in USDC. A per-token skill charges max(minimum, "
                "tokens / 1000 × price per 1,000 tokens).",
            },
        ),
    ]
    history_fieldset = (
        "History",
        {"fields": ["created_at", "updated_at", "published_at"], "classes": ["collapse"]},
    )

    class Media:
        js = ["vendo_admin/skill_form.js"]

    def get_fieldsets(self, request, obj=None):
        # A skill being added has no history yet.
        fieldsets = list(super().get_fieldsets(request, obj))
        return fieldsets if obj is None else [*fieldsets, self.history_fieldset]

    def view_on_site(self, obj):
        # A draft has no public page yet.
        return obj.get_absolute_url() if obj.is_live else None

    def get_autocomplete_fields(self, request):
        # A provider picks among its few agents in a plain list; operators search them all.
        return [] if is_provider(request.user) else ["agent"]

    @admin.display(description="status", ordering="status")
    def status_label(self, obj) -> str:
        return format_html(
            '<span class="vendo-badge" data-status="{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="price (USDC)")
    def price_label(self, obj) -> str:
        if obj.pricing == Skill.Pricing.FIXED:
            return format_usdc(obj.price) if obj.price is not None else "—"
        return f"{format_usdc(obj.price_per_1k)} / 1k tokens, min {format_usdc(obj.min_price)}"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "agent" and is_provider(request.user):
            kwargs["queryset"] = Agent.objects.owned_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if skill_save(skill=obj):
            self.message_user(
                request,
                "Its prompt, model, output format or schema changed, so the skill is a draft "
                "again: it left the catalog until a test run of this version passes and you "
                "publish it.",
                messages.WARNING,
            )
        elif not change:
            self.message_user(
                request,
                "New skills start as drafts, out of the catalog: start a test run from the "
                "skill's page, then publish it.",
                messages.INFO,
            )

    # -- the lifecycle: test run, publish ---------------------------------------------------

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="marketplace_skill_publish",
            ),
            path(
                "<path:object_id>/unpublish/",
                self.admin_site.admin_view(self.unpublish_view),
                name="marketplace_skill_unpublish",
            ),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        skill = self.get_object(request, unquote(object_id))
        context = {
            **(extra_context or {}),
            "lifecycle_urls": _lifecycle_urls(skill),
            # Through the reverse relation: the catalog's admin names no job model.
            "test_runs": list(skill.jobs.filter(is_test=True).order_by("-created_at")[:5]),
            "test_runs_per_day": settings.PROVIDER_TEST_RUNS_PER_DAY,
            "can_change_skill": self.has_change_permission(request, skill),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def publish_view(self, request, object_id):
        return self._lifecycle(
            request,
            object_id,
            skill_publish,
            "is live: buyers find it in the catalog while it is active.",
        )

    def unpublish_view(self, request, object_id):
        return self._lifecycle(
            request, object_id, skill_unpublish, "is a draft again: it left the catalog."
        )

    def _lifecycle(self, request, object_id, service, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        skill = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, skill):
            raise PermissionDenied
        try:
            skill = service(skill=skill)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, f"“{skill.name}” {done}", messages.SUCCESS)
        return redirect(reverse("admin:marketplace_skill_change", args=[skill.pk]))

    # -- bulk activate and deactivate, and deleting ------------------------------------------

    @admin.action(description="Activate the selected skills", permissions=["change"])
    def activate(self, request, queryset):
        count = skills_set_active(skills=queryset, active=True)
        self.message_user(request, f"{count} skill(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate the selected skills", permissions=["change"])
    def deactivate(self, request, queryset):
        count = skills_set_active(skills=queryset, active=False)
        self.message_user(request, f"{count} skill(s) deactivated.", messages.SUCCESS)

    def delete_view(self, request, object_id, extra_context=None):
        skill = self.get_object(request, unquote(object_id))
        if skill.jobs.exists():
            self.message_user(request, f"“{skill}” {HAS_JOBS}.", messages.ERROR)
            return redirect(reverse("admin:marketplace_skill_change", args=[skill.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs, request):
        # Jobs keep their skill (a buyer's record): a skill with jobs is deactivated, never
        # deleted. Said plainly instead of a list of protected jobs or a permission error.
        pks = [obj.pk for obj in objs]
        with_jobs = Skill.objects.filter(pk__in=pks, jobs__isnull=False).distinct()
        if with_jobs:
            return [], {}, set(), [f"{skill}: {HAS_JOBS}" for skill in with_jobs]
        return super().get_deleted_objects(objs, request)


HAS_JOBS = "cannot be deleted: it has jobs: deactivate it instead"


@admin.register(OperatorAlert)
class OperatorAlertAdmin(admin.ModelAdmin):
    """Operators' alerts; providers have no permission on them."""

    list_display = ["kind", "message", "count", "created_at", "last_seen_at", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["message", "key"]
    readonly_fields = ["kind", "key", "message", "count", "created_at", "last_seen_at"]
    actions = ["resolve"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark resolved")
    def resolve(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        self.message_user(request, f"{count} alert(s) resolved.")
