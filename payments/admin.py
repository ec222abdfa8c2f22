from django import forms
from django.contrib import admin, messages

from marketplace.admin import OwnedAdmin
from marketplace.errors import ApplicationError
from marketplace.money import format_token
from marketplace.permissions import is_provider
from payments.models import (
    ChainCursor,
    Invoice,
    LedgerEntry,
    LedgerTransaction,
    OnchainTransfer,
    Payment,
    Submission,
)
from payments.services.attribution import payment_attribute


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
class InvoiceAdmin(OwnedAdmin):
    owner_path = "job__skill__agent__owner"
    list_display = ["reference", "status", "amount", "paid", "excess", "expires_at", "paid_at"]
    list_filter = ["status", "chain_id"]
    search_fields = ["reference", "payments__tx_hash", "recipient"]
    inlines = [PaymentInline, SubmissionInline, RefundInline]
    # Invoices are written by the system only.
    readonly_fields = [
        "reference", "status", "chain_id", "token_address", "token_decimals", "recipient",
        "amount", "paid", "pending", "excess", "late", "expires_at", "holds_amount",
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

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
class PaymentAdmin(OwnedAdmin):
    owner_path = "invoice__job__skill__agent__owner"
    form = AttributeForm
    list_display = [
        "tx_hash", "log_index", "invoice", "from_address", "amount", "status", "attribution",
        "confirmations", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "attribution", ("invoice", admin.EmptyFieldListFilter), "source"]
    search_fields = ["tx_hash", "from_address", "invoice__reference"]
    list_select_related = ["invoice"]
    base_readonly = [
        "invoice", "tx_hash", "log_index", "block_number", "block_time", "from_address",
        "to_address", "amount", "status", "confirmations", "is_final", "reason", "attribution",
        "attributed_by", "attributed_at", "is_late", "is_booked", "source", "created_at",
    ]  # fmt: skip

    amount = _units("amount_units", "amount (USDC)")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_unmatched and not is_provider(request.user):
            return self.base_readonly
        return [*self.base_readonly, "attribution_note"]

    def get_fields(self, request, obj=None):
        fields = list(self.get_readonly_fields(request, obj))
        if obj is not None and obj.is_unmatched and not is_provider(request.user):
            fields += ["attribute_to", "attribution_note"]
        return fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
class OnchainTransferAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ["account", "ref", "amount_units"]
    readonly_fields = fields


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(admin.ModelAdmin):
    """The books, read-only (operators only): every movement and its entries."""

    list_display = ["pk", "kind", "memo", "invoice", "created_at"]
    list_filter = ["kind"]
    search_fields = ["memo", "invoice__reference"]
    inlines = [LedgerEntryInline]
    readonly_fields = ["kind", "memo", "invoice", "payment", "transfer", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChainCursor)
class ChainCursorAdmin(admin.ModelAdmin):
    """The watcher's position: written by the system only."""

    list_display = ["chain_id", "token_address", "next_block", "window", "updated_at"]
    readonly_fields = ["chain_id", "token_address", "next_block", "window", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
