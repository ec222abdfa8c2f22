from decimal import Decimal

from django import forms
from django.contrib import admin, messages

from jobs import services
from jobs.models import DeadLetter, Dispute, Job, JobEvent
from marketplace.admin import OwnedAdmin
from marketplace.errors import ApplicationError
from marketplace.money import format_token, format_usdc, to_units
from marketplace.permissions import is_provider


class DisputeInline(admin.StackedInline):
    """The buyer's dispute and its reason, for the provider to see; operators decide it under
    Disputes."""

    model = Dispute
    extra = 0
    can_delete = False
    fields = ["reason", "opened_at", "resolution", "refund_usdc", "note", "resolved_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="refunded (USDC)")
    def refund_usdc(self, obj) -> str:
        return format_token(obj.refund_units, obj.job.invoice.token_decimals)


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "status", "message", "detail"]
    readonly_fields = fields

    @admin.display(description="detail (not shown to the buyer)")
    def detail(self, obj) -> str:
        return (obj.data or {}).get("detail", "")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(OwnedAdmin):
    owner_path = "skill__agent__owner"
    list_display = [
        "short_id",
        "skill",
        "status",
        "price_usdc",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", ("skill", admin.RelatedOnlyFieldListFilter), "payment_mode"]
    search_fields = ["public_id", "prompt"]
    list_select_related = ["skill__agent"]
    date_hierarchy = "created_at"
    inlines = [DisputeInline, JobEventInline]
    actions = ["retry_jobs", "refund_jobs"]
    raw_id_fields = ["buyer", "invoice"]
    # Everything on a job is written by the system; the admin reads it and acts through actions.
    readonly_fields = [
        "public_id", "skill", "invoice", "buyer", "prompt", "status", "payment_mode",
        "price_usdc", "output_text", "output_json", "partial_text", "input_tokens",
        "output_tokens", "attempts", "deliveries", "error", "error_detail", "lease_expires_at",
        "requeued_at", "created_at", "paid_at", "started_at", "held_at", "delivered_at",
        "completed_at", "failed_at", "expired_at", "disputed_at", "refunded_at",
    ]  # fmt: skip
    exclude = ["price", "claim_token"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # Providers never learn who bought: only operators see the buyer.
    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [f for f in fields if f != "buyer"] if is_provider(request.user) else fields

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        return [*exclude, "buyer"] if is_provider(request.user) else exclude

    def get_actions(self, request):
        actions = super().get_actions(request)
        if is_provider(request.user):
            actions.pop("retry_jobs", None)
            actions.pop("refund_jobs", None)
        return actions

    @admin.display(description="job", ordering="created_at")
    def short_id(self, obj) -> str:
        return str(obj.public_id)[:8]

    @admin.display(description="price (USDC)", ordering="price")
    def price_usdc(self, obj) -> str:
        return format_usdc(obj.price)

    @admin.action(description="Retry the selected failed jobs")
    def retry_jobs(self, request, queryset):
        self._each(request, queryset, services.job_retry, "queued again")

    @admin.action(description="Refund the selected completed or disputed jobs in full")
    def refund_jobs(self, request, queryset):
        def refund(*, job):
            return services.job_refund(job=job, user=request.user)

        self._each(request, queryset, refund, "refunded in full")

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for job in queryset:
            try:
                service(job=job)
                count += 1
            except ApplicationError as error:
                self.message_user(request, f"{job}: {error.message}", messages.ERROR)
        if count:
            self.message_user(request, f"{count} job(s) {done}.", messages.SUCCESS)


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "task_name",
        "job",
        "short_exception",
        "attempts",
        "created_at",
        "replayed_at",
        "resolved_at",
    ]
    list_filter = ["task_name", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["task_name", "exception", "job__public_id"]
    list_select_related = ["job__skill"]
    readonly_fields = [
        "job", "task_name", "task_id", "args", "kwargs", "exception", "traceback", "attempts",
        "created_at", "replayed_at", "resolved_at",
    ]  # fmt: skip
    actions = ["replay", "mark_resolved"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="exception")
    def short_exception(self, obj) -> str:
        return obj.exception[:120]

    @admin.action(description="Replay: run the job again")
    def replay(self, request, queryset):
        for dead_letter in queryset:
            try:
                services.dead_letter_replay(dead_letter=dead_letter)
            except ApplicationError as error:
                self.message_user(request, f"{dead_letter}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Replayed {dead_letter}.", messages.SUCCESS)

    @admin.action(description="Mark resolved")
    def mark_resolved(self, request, queryset):
        count = services.dead_letters_resolve(dead_letters=queryset)
        self.message_user(request, f"{count} dead letter(s) marked resolved.", messages.SUCCESS)


class DisputeResolveForm(forms.ModelForm):
    """An operator's decision: refund an amount (all, part or nothing), with a note."""

    refund = forms.DecimalField(
        label="Refund to the buyer (USDC)",
        min_value=Decimal(0),
        decimal_places=6,
        help_text="0 upholds the job: the provider keeps its share. The most is what the "
        "buyer paid for the job.",
    )

    class Meta:
        model = Dispute
        fields = ["note"]


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    """Operators resolve disputes here; providers see them on their jobs."""

    form = DisputeResolveForm
    list_display = ["job", "opened_at", "resolution", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "resolution"]
    list_select_related = ["job__skill"]
    search_fields = ["job__public_id", "reason"]
    readonly_fields = ["job", "reason", "opened_at", "paid", "resolution", "resolved_at"]
    fields = ["job", "reason", "opened_at", "paid", "refund", "note", "resolution", "resolved_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or obj.is_open)

    @admin.display(description="buyer paid (USDC)")
    def paid(self, obj) -> str:
        invoice = obj.job.invoice
        total = int(invoice.share_units) + int(invoice.fee_units)
        return format_token(total, invoice.token_decimals)

    def save_model(self, request, obj, form, change):
        invoice = obj.job.invoice
        try:
            services.dispute_resolve(
                dispute=obj,
                refund_units=to_units(form.cleaned_data["refund"], invoice.token_decimals),
                note=form.cleaned_data["note"],
                user=request.user,
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
