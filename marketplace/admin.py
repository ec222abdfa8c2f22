"""The providers' console. A provider sees and edits only its own rows; operators see all."""

from django import forms
from django.contrib import admin
from django.http import Http404

from marketplace import jsonsafe
from marketplace.models import Agent, OperatorAlert, Skill
from marketplace.permissions import is_provider
from marketplace.pricing import allowed_models
from marketplace.schemas import MAX_SCHEMA_CHARS


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
    """A JSON field that shows an empty box, not `null`, when there is no value.

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
        return "" if value is None else super().prepare_value(value)


def model_choices() -> list[tuple[str, str]]:
    """The models a skill may use (settings.ALLOWED_MODELS), with their limits and costs."""
    return [
        (
            name,
            f"{name} (at most {model.max_output_tokens:,} output tokens; "
            f"costs {model.cost_per_1k_output} USDC per 1,000)",
        )
        for name, model in allowed_models().items()
    ]


class SkillForm(forms.ModelForm):
    model = forms.ChoiceField(
        choices=model_choices,
        help_text="Your price must cover what the model costs the platform.",
    )
    json_schema = OptionalJSONField(
        label="JSON schema",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
        help_text=Skill._meta.get_field("json_schema").help_text,
    )

    class Meta:
        model = Skill
        # The admin's fieldsets choose the fields; this is the form's own fallback.
        fields = ["agent", "name", "slug", "service_key", "json_schema"]


@admin.register(Skill)
class SkillAdmin(OwnedAdmin):
    owner_path = "agent__owner"
    form = SkillForm
    list_display = ["name", "agent", "category", "price_label", "output_format", "is_active"]
    list_filter = [
        ("agent", admin.RelatedOnlyFieldListFilter),
        "category",
        "output_format",
        "pricing",
        "is_active",
    ]
    search_fields = ["name", "slug", "service_key", "description"]
    list_select_related = ["agent"]
    prepopulated_fields = {"slug": ["name"], "service_key": ["name"]}
    autocomplete_fields = ["agent"]
    readonly_fields = ["created_at", "updated_at"]
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
                ]
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
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="price (USDC)")
    def price_label(self, obj) -> str:
        if obj.pricing == Skill.Pricing.FIXED:
            return f"{obj.price}"
        return f"{obj.price_per_1k} / 1k tokens, min {obj.min_price}"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "agent" and is_provider(request.user):
            kwargs["queryset"] = Agent.objects.owned_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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
