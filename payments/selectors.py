"""Reads of the money for the console: what came in, what is owed and in flight, the books.

Each function makes a fixed number of queries whatever the number of rows, and the one chain
read (the signer's gas) is cached briefly and never raises: a console page must open while
the node is down.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber
from web3 import Web3

from payments import chain
from payments.models import (
    Account,
    Invoice,
    LedgerCheck,
    OnchainTransfer,
    Payment,
    Submission,
)
from payments.services.ledger import balances, total

# Sums are of one token's base units; their decimals are the rows' own (or the contract's),
# USDC's six when there is nothing to read them from.
USDC_DECIMALS = 6
SIGNER_GAS_CACHE_SECONDS = 30
# A node that did not answer is asked again sooner than a good reading is refreshed.
SIGNER_GAS_ERROR_CACHE_SECONDS = 10
RECENT_PAYOUTS = 3


def _units(value) -> int:
    return int(value or 0)


# ------------------------------------------------------------------------------
# Totals of a changelist's filtered rows
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """The sum of the rows an admin list shows, for every page of it, in base units."""

    rows: int
    amount_units: int
    # The part that counts as money in: confirmed transfers, or what invoices confirmed.
    confirmed_units: int
    decimals: int = USDC_DECIMALS


def payment_totals(*, payments: QuerySet) -> Totals:
    """Return the count and sums of `payments` (already filtered), in one query."""
    confirmed = Sum("amount_units", filter=Q(status=Payment.Status.CONFIRMED))
    return _totals(payments, confirmed=confirmed)


def invoice_totals(*, invoices: QuerySet) -> Totals:
    """Return the count, the amount asked and the amount confirmed of `invoices`."""
    return _totals(invoices, confirmed=Sum("paid_units"))


def _totals(rows: QuerySet, *, confirmed) -> Totals:
    sums = rows.order_by().aggregate(
        rows=Count("pk"),
        amount=Sum("amount_units"),
        confirmed=confirmed,
        decimals=Max("token_decimals"),
    )
    return Totals(
        sums["rows"],
        _units(sums["amount"]),
        _units(sums["confirmed"]),
        sums["decimals"] or USDC_DECIMALS,
    )


# ------------------------------------------------------------------------------
# A provider's earnings, per agent
# ------------------------------------------------------------------------------


@dataclass
class Earnings:
    held_units: int = 0
    payable_units: int = 0
    paid_out_units: int = 0
    payouts: list[OnchainTransfer] = field(default_factory=list)


def agent_earnings(*, agent_ids: list[int]) -> dict[int, Earnings]:
    """Return each agent's earnings: held and payable (the ledger), paid out (confirmed
    payouts), and its latest payouts with their transaction hashes. Five queries."""
    found = {agent_id: Earnings() for agent_id in agent_ids}
    for ref, amount in balances(Account.AGENT_HELD, refs=agent_ids).items():
        found[int(ref)].held_units = amount
    for ref, amount in balances(Account.AGENT_PAYABLE, refs=agent_ids).items():
        found[int(ref)].payable_units = amount
    payouts = OnchainTransfer.objects.filter(
        kind=OnchainTransfer.Kind.PAYOUT, agent_id__in=agent_ids
    )
    paid = (
        payouts.filter(status=OnchainTransfer.Status.CONFIRMED)
        .order_by()
        .values("agent_id")
        .annotate(total=Sum("amount_units"))
    )
    for row in paid:
        found[row["agent_id"]].paid_out_units = _units(row["total"])
    latest = (
        payouts.exclude(status=OnchainTransfer.Status.CANCELLED)
        .annotate(
            rank=Window(RowNumber(), partition_by=F("agent_id"), order_by=F("created_at").desc())
        )
        .filter(rank__lte=RECENT_PAYOUTS)
        .order_by("agent_id", "-created_at")
    )
    for payout in latest:
        found[payout.agent_id].payouts.append(payout)
    return found


# ------------------------------------------------------------------------------
# The operator's overview
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GasReading:
    """The platform signer's native balance (it pays the gas of payouts and refunds)."""

    address: str
    wei: int | None
    error: str = ""

    @property
    def ether(self) -> Decimal | None:
        return None if self.wei is None else Web3.from_wei(self.wei, "ether")


def signer_gas() -> GasReading:
    """Read the signer's balance from the chain, cached briefly; never raise."""
    key = f"console:signer-gas:{settings.CHAIN_RPC_URL}:{settings.PAYMENT_RECIPIENT}"
    reading = cache.get(key)
    if reading is not None:
        return reading
    address = settings.PAYMENT_RECIPIENT
    try:
        reading = GasReading(address=address, wei=chain.native_balance(address))
    except chain.ChainError as error:
        reading = GasReading(address=address, wei=None, error=error.message)
    timeout = (
        SIGNER_GAS_CACHE_SECONDS if reading.wei is not None else SIGNER_GAS_ERROR_CACHE_SECONDS
    )
    cache.set(key, reading, timeout=timeout)
    return reading


@dataclass
class MoneyOverview:
    today_units: int
    today_count: int
    week_units: int
    week_count: int
    open_invoices: int
    open_invoice_units: int
    rejected_by_code: list[tuple[str, int]]
    unmatched_count: int
    unmatched_units: int
    refunds_in_flight: int
    refund_units_in_flight: int
    payouts_in_flight: int
    payout_units_in_flight: int
    revenue_units: int
    ledger: LedgerCheck | None  # beat's last check of the books against the chain
    wallet_units: int
    gas: GasReading
    decimals: int = USDC_DECIMALS


def money_overview(*, today: datetime, week: datetime) -> MoneyOverview:
    """Money in since `today` and since `week` (confirmed transfers, by the time they were
    mined), open invoices, rejected hashes by code, unmatched transfers, transfers in flight,
    revenue, the last check of the books against the chain (beat's: a page never waits for
    the chain) and the signer's gas."""
    confirmed = Payment.objects.filter(status=Payment.Status.CONFIRMED, block_time__gte=week)
    money_in = confirmed.order_by().aggregate(
        today=Sum("amount_units", filter=Q(block_time__gte=today)),
        today_count=Count("pk", filter=Q(block_time__gte=today)),
        week=Sum("amount_units"),
        week_count=Count("pk"),
    )
    invoices = Invoice.objects.open().order_by().aggregate(n=Count("pk"), units=Sum("amount_units"))
    rejected = (
        Submission.objects.filter(status=Submission.Status.REJECTED, updated_at__gte=week)
        .order_by()
        .values("code")
        .annotate(n=Count("pk"))
        .order_by("-n", "code")
    )
    unmatched = (
        Payment.objects.unmatched().order_by().aggregate(n=Count("pk"), units=Sum("amount_units"))
    )
    in_flight = (
        OnchainTransfer.objects.filter(status__in=OnchainTransfer.OPEN_STATUSES)
        .order_by()
        .aggregate(
            refunds=Count("pk", filter=Q(kind=OnchainTransfer.Kind.REFUND)),
            refund_units=Sum("amount_units", filter=Q(kind=OnchainTransfer.Kind.REFUND)),
            payouts=Count("pk", filter=Q(kind=OnchainTransfer.Kind.PAYOUT)),
            payout_units=Sum("amount_units", filter=Q(kind=OnchainTransfer.Kind.PAYOUT)),
        )
    )
    return MoneyOverview(
        today_units=_units(money_in["today"]),
        today_count=money_in["today_count"],
        week_units=_units(money_in["week"]),
        week_count=money_in["week_count"],
        open_invoices=invoices["n"],
        open_invoice_units=_units(invoices["units"]),
        rejected_by_code=[(row["code"] or "other", row["n"]) for row in rejected],
        unmatched_count=unmatched["n"],
        unmatched_units=_units(unmatched["units"]),
        refunds_in_flight=in_flight["refunds"],
        refund_units_in_flight=_units(in_flight["refund_units"]),
        payouts_in_flight=in_flight["payouts"],
        payout_units_in_flight=_units(in_flight["payout_units"]),
        revenue_units=total(Account.REVENUE),
        ledger=LedgerCheck.objects.first(),  # the newest
        wallet_units=total(Account.WALLET),
        gas=signer_gas(),
        decimals=token_decimals(),
    )


def token_decimals() -> int:
    """Return the token's decimals (read once per process), USDC's when the node is down."""
    try:
        return chain.token_decimals()
    except chain.ChainError:
        return USDC_DECIMALS
