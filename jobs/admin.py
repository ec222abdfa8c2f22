import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from jobs import services
from jobs.models import DeadLetter, Dispute, Job, JobEvent
from jobs.rendering import render_result
from marketplace.admin import OwnedAdmin
from marketplace.errors import ApplicationError
from marketplace.models import Skill
from marketplace.money import format_token, format_usdc, to_units
from marketplace.permissions import is_provider
from payments.models import Submission


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
    """The job's timeline, as on its public page, with the detail only the console shows."""

    model = JobEvent
    verbose_name_plural = "timeline"
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


def _stamp(moment) -> str:
    return timezone.localtime(moment).strftime("%d %b %Y, %H:%M:%S") if moment else "—"


def _short(public_id) -> str:
    return str(public_id)[:8]


STAMPS = [
    ("paid_at", "paid"),
    ("started_at", "started"),
    ("held_at", "held"),
    ("delivered_at", "delivered"),
    ("completed_at", "completed"),
    ("failed_at", "failed"),
    ("expired_at", "expired"),
    ("disputed_at", "disputed"),
    ("refunded_at", "refunded"),
]


class SkillFilter(admin.RelatedOnlyFieldListFilter):
    """The skills of the jobs listed, named with their agent in one query (not one a skill)."""

    def field_choices(self, field, request, model_admin):
        listed = model_admin.get_queryset(request).order_by().values_list("skill_id", flat=True)
        skills = Skill.objects.filter(pk__in=listed).select_related("agent")
        return [(skill.pk, str(skill)) for skill in skills.order_by("agent__name", "name")]


@admin.register(Job)
class JobAdmin(OwnedAdmin):
    """Jobs and test runs. A provider's job page is grouped: a summary with the money, the
    input and the output as the buyer reads them, the timeline; internals collapsed."""

    owner_path = "skill__agent__owner"
    list_display = [
        "short_id",
        "skill",
        "status_label",
        "price_usdc",
        "error_short",
        "payment_problem",
        "ordered",
    ]
    list_filter = [
        "status",
        "is_test",
        ("skill", SkillFilter),
        "payment_mode",
    ]
    search_fields = ["public_id", "prompt"]
    list_select_related = ["skill__agent", "invoice"]
    date_hierarchy = "created_at"
    inlines = [DisputeInline, JobEventInline]
    actions = ["retry_jobs", "refund_jobs"]
    # Everything on a job is written by the system; the admin reads it and acts through the
    # buttons and actions.
    summary = ["status_label", "kind", "skill", "created_at", "money", "tokens", "error"]
    payment = ["invoice_link", "payment_links", "rejections"]
    internals = [
        "public_id", "payment_mode", "attempts", "deliveries", "error_detail", "raw_output",
        "timestamps", "lease_expires_at", "requeued_at", "skill_version",
    ]  # fmt: skip
    readonly_fields = [*summary, "prompt_text", "output", *payment, *internals, "buyer"]

    def get_fieldsets(self, request, obj=None):
        operator = not is_provider(request.user)
        summary = [f for f in self.summary if f != "error" or (obj is not None and obj.error)]
        fieldsets = [
            ("Summary", {"fields": summary}),
            ("Input", {"fields": ["prompt_text"]}),
            ("Output", {"fields": ["output"]}),
        ]
        if operator and obj is not None and not obj.is_test:
            fieldsets.append(("Invoice and payments", {"fields": self.payment}))
        # Providers never learn who bought: only operators see the buyer.
        internals = [*self.internals, "buyer"] if operator else self.internals
        fieldsets.append(("Internals", {"fields": internals, "classes": ["collapse"]}))
        return fieldsets

    def get_queryset(self, request):
        rejected = Submission.objects.filter(status=Submission.Status.REJECTED).order_by(
            "-created_at"
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("invoice__submissions", queryset=rejected, to_attr="rejected")
            )
        )

    def get_list_display(self, request):
        # A refusal's reason may quote the sender's address: providers read its code only.
        fields = super().get_list_display(request)
        if is_provider(request.user):
            return ["payment_problem_code" if f == "payment_problem" else f for f in fields]
        return fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if is_provider(request.user):
            actions.pop("retry_jobs", None)
            actions.pop("refund_jobs", None)
        return actions

    def view_on_site(self, obj):
        # A test run has no public page.
        return None if obj.is_test else obj.get_absolute_url()

    # -- columns ------------------------------------------------------------------------------

    @admin.display(description="job", ordering="created_at")
    def short_id(self, obj) -> str:
        return _short(obj.public_id)

    @admin.display(description="status", ordering="status")
    def status_label(self, obj) -> str:
        badge = format_html(
            '<span class="vendo-badge" data-status="{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )
        if obj.is_test:
            badge += mark_safe(' <span class="vendo-badge" data-status="test">Test run</span>')
        return badge

    @admin.display(description="price (USDC)", ordering="price")
    def price_usdc(self, obj) -> str:
        return format_usdc(obj.price)

    @admin.display(description="ordered", ordering="created_at")
    def ordered(self, obj) -> str:
        return timezone.localtime(obj.created_at).strftime("%d %b, %H:%M")

    @admin.display(description="error")
    def error_short(self, obj) -> str:
        return Truncator(obj.error).chars(120) if obj.error else "—"

    @admin.display(description="payment refused")
    def payment_problem_code(self, obj) -> str:
        rejected = getattr(obj.invoice, "rejected", None) if obj.invoice_id else None
        return ", ".join(dict.fromkeys(item.code for item in rejected)) if rejected else "—"

    @admin.display(description="payment refused")
    def payment_problem(self, obj) -> str:
        rejected = getattr(obj.invoice, "rejected", None) if obj.invoice_id else None
        if not rejected:
            return "—"
        latest = rejected[0]
        more = f" (+{len(rejected) - 1} more)" if len(rejected) > 1 else ""
        return f"{latest.code}: {Truncator(latest.reason).chars(100)}{more}"

    @admin.display(description="invoice")
    def invoice_link(self, obj) -> str:
        if obj.invoice is None:
            return "— (unbilled test run)" if obj.is_test else "—"
        invoice = obj.invoice
        return format_html(
            '<a href="{}">{} USDC, {}</a>',
            reverse("admin:payments_invoice_change", args=[invoice.pk]),
            format_token(invoice.amount_units, invoice.token_decimals),
            invoice.get_status_display().lower(),
        )

    # -- the job page ----------------------------------------------------------------------

    @admin.display(description="kind")
    def kind(self, obj) -> str:
        if obj.is_test:
            return "Test run: unbilled, seen only here by its provider and operators"
        return f"Order: {obj.get_payment_mode_display().lower()}"

    @admin.display(description="money")
    def money(self, obj) -> str:
        if obj.is_test:
            return format_html(
                "Unbilled. A buyer's quote for this input: {} USDC.", format_usdc(obj.price)
            )
        invoice = obj.invoice
        decimals = invoice.token_decimals
        rows = [("Quoted price", f"{format_usdc(obj.price)} USDC")]
        rows.append(
            (
                "Buyer paid",
                f"{format_token(invoice.paid_units, decimals)} USDC"
                if invoice.paid_units
                else f"nothing yet ({invoice.get_status_display().lower()})",
            )
        )
        if invoice.settled_at is not None:
            if invoice.agent_id is None:
                rows.append(("Provider's share", "none: the job's money went back to the buyer"))
            else:
                state = (
                    "held until the dispute window closes"
                    if invoice.released_at is None
                    else "released: payable"
                )
                rows.append(
                    (
                        "Provider's share",
                        f"{format_token(invoice.share_units, decimals)} USDC, {state}",
                    )
                )
                rows.append(("Platform fee", f"{format_token(invoice.fee_units, decimals)} USDC"))
        else:
            rows.append(("Provider's share", "once the job completes and is paid"))
        if invoice.refunded_units:
            rows.append(("Refunded", f"{format_token(invoice.refunded_units, decimals)} USDC"))
        return format_html(
            '<dl class="vendo-money">{}</dl>',
            format_html_join("", "<div><dt>{}</dt><dd>{}</dd></div>", rows),
        )

    @admin.display(description="tokens")
    def tokens(self, obj) -> str:
        return (
            f"{obj.input_tokens:,} input · {obj.output_tokens:,} output · "
            f"{obj.attempts} model call{'s' if obj.attempts != 1 else ''}"
        )

    @admin.display(description="input")
    def prompt_text(self, obj) -> str:
        return format_html('<div class="vendo-prompt">{}</div>', obj.prompt)

    @admin.display(description="output")
    def output(self, obj) -> str:
        if obj.has_result:
            return format_html(
                '<div class="vendo-output" id="job-output">{}</div>', render_result(obj).html
            )
        if obj.partial_text:
            return format_html(
                '<p class="vendo-muted">Streaming; so far:</p><pre class="vendo-output">{}</pre>',
                obj.partial_text,
            )
        if obj.is_running:
            return "Not yet: the job is running. This page refreshes until it ends."
        return "None."

    @admin.display(description="raw output")
    def raw_output(self, obj) -> str:
        if obj.output_json is not None:
            text = json.dumps(obj.output_json, indent=2, ensure_ascii=False)
        else:
            text = obj.output_text
        return format_html('<pre class="vendo-prompt">{}</pre>', text) if text else "—"

    @admin.display(description="times")
    def timestamps(self, obj) -> str:
        stamps = [
            (label, _stamp(getattr(obj, name))) for name, label in STAMPS if getattr(obj, name)
        ]
        if not stamps:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}: {}", stamps)

    @admin.display(description="skill version")
    def skill_version(self, obj) -> str:
        if not obj.is_test:
            return "—"
        same = obj.skill_fingerprint == obj.skill.fingerprint
        return "the skill as saved now" if same else "an earlier version of the skill"

    @admin.display(description="transfers")
    def payment_links(self, obj) -> str:
        if obj.invoice is None:
            return "—"
        rows = [
            (
                reverse("admin:payments_payment_change", args=[payment.pk]),
                payment.tx_hash,
                format_token(payment.amount_units, payment.token_decimals),
                payment.get_status_display().lower(),
            )
            for payment in obj.invoice.payments.all()
        ]
        if not rows:
            return "None."
        return format_html_join(
            mark_safe("<br>"), '<a href="{}"><code>{}</code></a> {} USDC, {}', rows
        )

    @admin.display(description="hashes rejected")
    def rejections(self, obj) -> str:
        rejected = getattr(obj.invoice, "rejected", None) if obj.invoice_id else None
        if not rejected:
            return "None."
        rows = [(item.tx_hash, item.code, item.reason) for item in rejected]
        return format_html_join(mark_safe("<br>"), "<code>{}</code> {}: {}", rows)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        operator = not is_provider(request.user) and self.has_change_permission(request, job)
        context = {
            **(extra_context or {}),
            "job": job,
            "can_retry": operator and not job.is_test and job.status == Job.Status.FAILED,
            "can_refund": operator
            and not job.is_test
            and job.status in (Job.Status.COMPLETED, Job.Status.DISPUTED),
            # While it runs the page refreshes itself (a pay-after-delivery job runs unpaid).
            "refresh": job.is_running
            or (job.status == Job.Status.PENDING and job.payment_mode == "on_completion"),
            "can_publish": job.is_test
            and job.status == Job.Status.COMPLETED
            and not job.skill.is_live
            and job.skill.is_tested
            and job.skill_fingerprint == job.skill.fingerprint
            and request.user.has_perm("marketplace.change_skill"),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    # -- buttons: test run, retry, refund -------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        own = [
            path("test-run/<int:skill_id>/", view(self.test_run_view), name="jobs_job_test_run"),
            path(
                "by-reference/<str:reference>/",
                view(self.by_reference_view),
                name="jobs_job_by_reference",
            ),
            path("<path:object_id>/retry/", view(self.retry_view), name="jobs_job_retry"),
            path("<path:object_id>/refund/", view(self.refund_view), name="jobs_job_refund"),
        ]
        return own + super().get_urls()

    def test_run_view(self, request, skill_id: int):
        """Start a test run of a skill the user may change; show its job page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        skills = Skill.objects.select_related("agent")
        if is_provider(request.user):
            skills = skills.owned_by(request.user)
        skill = skills.filter(pk=skill_id).first()
        if skill is None:
            raise Http404("No such skill.")
        if not request.user.has_perm("marketplace.change_skill"):
            raise PermissionDenied
        try:
            job = services.job_test_run(
                skill=skill, prompt=request.POST.get("prompt", ""), user=request.user
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return redirect(reverse("admin:marketplace_skill_change", args=[skill.pk]))
        self.message_user(
            request,
            "Test run started: this page refreshes until it ends. Once it completes, publish "
            "the skill here or from its page.",
            messages.SUCCESS,
        )
        return redirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def by_reference_view(self, request, reference: str):
        """Open the job an invoice is for (its reference is the job's public id)."""
        try:
            job = self.get_queryset(request).filter(public_id=reference).first()
        except ValidationError:
            job = None
        if job is None or not self.has_view_permission(request, job):
            raise Http404("No such job.")
        return redirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def retry_view(self, request, object_id):
        return self._operator_button(request, object_id, services.job_retry, "queued again")

    def refund_view(self, request, object_id):
        def refund(*, job):
            return services.job_refund(job=job, user=request.user)

        return self._operator_button(request, object_id, refund, "refunded in full")

    def _operator_button(self, request, object_id, service, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self.get_object(request, unquote(object_id))
        if is_provider(request.user) or not self.has_change_permission(request, job):
            raise PermissionDenied
        try:
            service(job=job)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, f"{job}: {done}.", messages.SUCCESS)
        return redirect(reverse("admin:jobs_job_change", args=[job.pk]))

    # -- list actions ---------------------------------------------------------------------

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
