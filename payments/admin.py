from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from marketplace.admin import OwnedAdmin
from marketplace.errors import ApplicationError
from marketplace.money import format_token
from marketplace.permissions import is_provider
from payments.models import (
    ChainCursor,
    Invoice,
    LedgerCheck,
    LedgerEntry,
    LedgerTransaction,
    OnchainTransfer,
    Payment,
    Submission,
)
from payments.selectors import invoice_totals, payment_totals
from payments.services.attribution import payment_attribute


class ForOperators:
    """Invoices and payments are the platform's books: they name buyers' wallets, which a
    provider never sees. A provider who opens one gets a page that says so, and where its own
    money shows instead, not a bare 403."""

    def _for_operators(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": f"{self.model._meta.verbose_name_plural.capitalize()} are for operators",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/vendo/for_operators.html", context, status=403)

    def changelist_view(self, request, extra_context=None):
        if is_provider(request.user):
            return self._for_operators(request)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if is_provider(request.user):
            return self._for_operators(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        if is_provider(request.user):
            return self._for_operators(request)
        return super().history_view(request, object_id, extra_context)


class WrittenBySystem:
    """Rows only the system writes: the admin reads them (and may act through actions)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnly(WrittenBySystem):
    def has_change_permission(self, request, obj=None):
        return False


class WithTotals:
    """A list that shows, above its rows, the count and the sum of every row its filters
    select (every page of them): admin/vendo/change_list_totals.html."""

    change_list_template = "admin/vendo/change_list_totals.html"
    totals_label = ""

    def totals(self, queryset):
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["totals"] = self.totals(context["cl"].queryset)
            context["totals_label"] = self.totals_label
        return response


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%d %b %Y, %H:%M") if moment else "—"


def job_link(reference: str) -> str:
    """A link to the admin page of the job whose invoice has this reference."""
    try:
        url = reverse("admin:jobs_job_by_reference", args=[reference])
    except NoReverseMatch:
        return reference
    return format_html('<a href="{}">{}</a>', url, reference[:8])


class PaidAtFilter(admin.DateFieldListFilter):
    """When the money arrived: the block time of the transfer that paid."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = "paid at"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = [
        "tx_hash", "log_index", "from_address", "amount", "status", "confirmations", "is_final",
        "attribution", "is_late", "source", "created_at",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="amount (USDC)")
    def amount(self, obj) -> str:
        return format_token(obj.amount_units, obj.token_decimals)


class SubmissionInline(ReadOnlyInline):
    model = Submission
    fields = ["tx_hash", "status", "code", "reason", "checks", "created_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = OnchainTransfer
    fk_name = "invoice"
    verbose_name_plural = "refunds"
    fields = ["to_address", "amount", "cause", "status", "tx_hash", "created_at"]
    readonly_fields = fields

    @admin.display(description="amount (USDC)")
    def amount(self, obj) -> str:
        return format_token(obj.amount_units, obj.token_decimals)


def _units(field: str, description: str):
    @admin.display(description=description)
    def show(self, obj) -> str:
        value = getattr(obj, field)
        return format_token(value, obj.token_decimals) if value else "—"

    return show


@admin.register(Invoice)
class InvoiceAdmin(ForOperators, WithTotals, WrittenBySystem, OwnedAdmin):
    owner_path = "job__skill__agent__owner"
    list_display = [
        "number", "for_job", "status", "amount", "paid", "excess", "created", "paid_on",
    ]  # fmt: skip
    list_filter = ["status", ("paid_at", PaidAtFilter), "chain_id"]
    date_hierarchy = "created_at"
    search_fields = ["reference", "payments__tx_hash", "recipient"]
    totals_label = "invoices"
    inlines = [PaymentInline, SubmissionInline, RefundInline]
    # Invoices are written by the system only.
    readonly_fields = [
        "reference", "for_job", "status", "chain_id", "token_address", "token_decimals",
        "recipient", "amount", "paid", "pending", "excess", "late", "expires_at", "holds_amount",
        "amount_held_until", "paid_at", "closed_at", "settled_at", "agent", "share", "fee",
        "held", "refunded", "released_at", "created_at",
    ]  # fmt: skip
    fields = readonly_fields

    amount = _units("amount_units", "amount (USDC)")
    paid = _units("paid_units", "confirmed (USDC)")
    pending = _units("pending_units", "confirming (USDC)")
    excess = _units("excess_units", "overpaid (USDC)")
    late = _units("late_units", "paid late (USDC)")
    share = _units("share_units", "provider share (USDC)")
    fee = _units("fee_units", "platform fee and tail (USDC)")
    held = _units("held_units", "share still held (USDC)")
    refunded = _units("refunded_units", "refunded (USDC)")

    def totals(self, queryset):
        return invoice_totals(invoices=queryset)

    @admin.display(description="invoice", ordering="pk")
    def number(self, obj) -> str:
        return f"#{obj.pk}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj) -> str:
        return _when(obj.created_at)

    @admin.display(description="paid at", ordering="paid_at")
    def paid_on(self, obj) -> str:
        return _when(obj.paid_at)

    @admin.display(description="job")
    def for_job(self, obj) -> str:
        return job_link(obj.reference)


class AttributeForm(forms.ModelForm):
    """An operator gives an unmatched transfer to an invoice, saying why (kept as audit)."""

    attribute_to = forms.CharField(
        label="Attribute to invoice",
        required=False,
        help_text="The job's id (its invoice reference), e.g. 3f2a…; leave empty to keep it "
        "unmatched (it is then sent back to its sender).",
    )

    class Meta:
        model = Payment
        fields = ["attribution_note"]


@admin.register(Payment)
class PaymentAdmin(ForOperators, WithTotals, WrittenBySystem, OwnedAdmin):
    owner_path = "invoice__job__skill__agent__owner"
    form = AttributeForm
    list_display = [
        "short_hash", "for_job", "sender", "amount", "status", "attribution", "mined",
    ]  # fmt: skip
    list_filter = [
        ("block_time", PaidAtFilter),
        "status",
        "attribution",
        ("invoice", admin.EmptyFieldListFilter),
        "source",
    ]
    date_hierarchy = "block_time"
    search_fields = ["tx_hash", "from_address", "invoice__reference"]
    list_select_related = ["invoice"]
    totals_label = "transfers"
    base_readonly = [
        "invoice", "for_job", "tx_hash", "log_index", "block_number", "block_time", "from_address",
        "to_address", "amount", "status", "confirmations", "is_final", "reason", "attribution",
        "attributed_by", "attributed_at", "is_late", "is_booked", "source", "created_at",
    ]  # fmt: skip

    amount = _units("amount_units", "amount (USDC)")

    def totals(self, queryset):
        return payment_totals(payments=queryset)

    @admin.display(description="transaction", ordering="tx_hash")
    def short_hash(self, obj) -> str:
        return f"{obj.tx_hash[:8]}…{obj.tx_hash[-4:]} #{obj.log_index}"

    @admin.display(description="from", ordering="from_address")
    def sender(self, obj) -> str:
        return format_html(
            '<span title="{}">{}…{}</span>',
            obj.from_address,
            obj.from_address[:8],
            obj.from_address[-4:],
        )

    @admin.display(description="paid at (mined)", ordering="block_time")
    def mined(self, obj) -> str:
        return _when(obj.block_time)

    @admin.display(description="job")
    def for_job(self, obj) -> str:
        return job_link(obj.invoice.reference) if obj.invoice_id else "— (unmatched)"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_unmatched and not is_provider(request.user):
            return self.base_readonly
        return [*self.base_readonly, "attribution_note"]

    def get_fields(self, request, obj=None):
        fields = list(self.get_readonly_fields(request, obj))
        if obj is not None and obj.is_unmatched and not is_provider(request.user):
            fields += ["attribute_to", "attribution_note"]
        return fields

    def save_model(self, request, obj, form, change):
        reference = form.cleaned_data.get("attribute_to", "").strip()
        if not reference:
            return
        invoice = Invoice.objects.filter(reference=reference).first()
        if invoice is None:
            self.message_user(request, f"No invoice has the reference {reference}.", messages.ERROR)
            return
        try:
            payment_attribute(
                payment=Payment.objects.get(pk=obj.pk),
                invoice=invoice,
                how=Payment.Attribution.OPERATOR,
                user=request.user,
                note=form.cleaned_data["attribution_note"],
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)


@admin.register(OnchainTransfer)
class OnchainTransferAdmin(ForOperators, ReadOnly, admin.ModelAdmin):
    """Payouts and refunds leaving the platform's wallet (operators only)."""

    list_display = [
        "kind", "cause", "to_address", "amount", "status", "tx_hash", "nonce", "created_at",
    ]  # fmt: skip
    list_filter = ["kind", "status", "cause"]
    search_fields = ["tx_hash", "to_address", "invoice__reference"]
    readonly_fields = [
        "kind", "cause", "status", "to_address", "amount", "invoice", "payment", "agent",
        "nonce", "tx_hash", "raw_tx", "block_number", "confirmations", "is_final", "broadcasts",
        "last_error", "next_attempt_at", "created_at", "signed_at", "sent_at", "confirmed_at",
        "cancelled_at",
    ]  # fmt: skip
    fields = readonly_fields

    amount = _units("amount_units", "amount (USDC)")


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ["account", "ref", "amount_units"]
    readonly_fields = fields


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ForOperators, ReadOnly, admin.ModelAdmin):
    """The books, read-only (operators only): every movement and its entries."""

    list_display = ["pk", "kind", "memo", "invoice", "created_at"]
    list_filter = ["kind"]
    search_fields = ["memo", "invoice__reference"]
    inlines = [LedgerEntryInline]
    readonly_fields = ["kind", "memo", "invoice", "payment", "transfer", "created_at"]
    fields = readonly_fields


@admin.register(LedgerCheck)
class LedgerCheckAdmin(ForOperators, ReadOnly, admin.ModelAdmin):
    """Beat's checks of the books against the chain, kept 30 days (operators only)."""

    list_display = ["checked_at", "ok", "block", "chain_units", "expected_units"]
    list_filter = ["ok"]
    date_hierarchy = "checked_at"
    readonly_fields = ["checked_at", "ok", "block", "chain_units", "expected_units", "problems"]
    fields = readonly_fields


@admin.register(ChainCursor)
class ChainCursorAdmin(ReadOnly, admin.ModelAdmin):
    """The watcher's position: written by the system only."""

    list_display = ["chain_id", "token_address", "next_block", "window", "updated_at"]
    readonly_fields = ["chain_id", "token_address", "next_block", "window", "updated_at"]
