from django.contrib import admin

from marketplace.admin import OwnedAdmin
from payments.models import ChainCursor, Invoice, Payment
from payments.money import format_usdc


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = [
        "tx_hash",
        "log_index",
        "amount_usdc",
        "status",
        "confirmations",
        "reason",
        "source",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="amount (USDC)")
    def amount_usdc(self, obj) -> str:
        return format_usdc(obj.amount) if obj.amount is not None else "—"


@admin.register(Invoice)
class InvoiceAdmin(OwnedAdmin):
    owner_path = "job__skill__agent__owner"
    list_display = [
        "pk",
        "job",
        "status",
        "amount_usdc",
        "paid_usdc",
        "excess_usdc",
        "expires_at",
        "paid_at",
    ]
    list_filter = ["status", "chain_id"]
    search_fields = ["job__public_id", "payments__tx_hash", "recipient"]
    list_select_related = ["job"]
    inlines = [PaymentInline]
    # Invoices are written by the system only.
    readonly_fields = [
        "job", "status", "chain_id", "token_address", "token_decimals", "recipient",
        "price_units", "tail_units", "amount_units", "amount_usdc", "paid_usdc", "pending_units",
        "excess_usdc", "expires_at", "paid_at", "created_at", "updated_at",
    ]  # fmt: skip
    exclude = ["paid_units", "excess_units"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount (USDC)", ordering="amount_units")
    def amount_usdc(self, obj) -> str:
        return format_usdc(obj.amount)

    @admin.display(description="paid (USDC)")
    def paid_usdc(self, obj) -> str:
        return format_usdc(obj.paid)

    @admin.display(description="excess (USDC)")
    def excess_usdc(self, obj) -> str:
        return format_usdc(obj.excess) if obj.excess_units else "—"


@admin.register(Payment)
class PaymentAdmin(OwnedAdmin):
    owner_path = "invoice__job__skill__agent__owner"
    list_display = [
        "tx_hash",
        "log_index",
        "invoice",
        "amount_usdc",
        "status",
        "confirmations",
        "source",
        "created_at",
    ]
    list_filter = ["status", "source"]
    search_fields = ["tx_hash", "from_address"]
    list_select_related = ["invoice"]
    readonly_fields = [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount (USDC)")
    def amount_usdc(self, obj) -> str:
        return format_usdc(obj.amount) if obj.amount is not None else "—"


@admin.register(ChainCursor)
class ChainCursorAdmin(admin.ModelAdmin):
    list_display = ["chain_id", "token_address", "next_block", "updated_at"]
    readonly_fields = ["chain_id", "token_address", "next_block", "updated_at"]
