"""The double-entry ledger: every movement of money is a transaction of entries summing to zero.

An arrow `A -> B` of X base units (money moving from A to B) is two entries: A +X, B -X.
Entries are debits positive and credits negative, so the wallet (an asset) has a positive
balance and every other account (what Vendo owes, or has earned) a negative one;
`balance()` reads each as a positive amount.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum

from payments.models import Account, LedgerEntry, LedgerTransaction

# Accounts whose balance (read the natural way) may never go below zero.
NEVER_NEGATIVE = {
    Account.WALLET,
    Account.ESCROW,
    Account.UNMATCHED,
    Account.AGENT_HELD,
    Account.AGENT_PAYABLE,
    Account.REFUND_DUE,
    Account.IN_FLIGHT,
}


class Unbalanced(Exception):
    """A transaction whose entries do not sum to zero: a bug, never posted."""


@dataclass(frozen=True)
class Ref:
    """An account, and what it is kept for (an invoice id, an agent id, an address...)."""

    account: str
    ref: str = ""

    @classmethod
    def of(cls, account: str, ref: object = "") -> "Ref":
        return cls(account, str(ref))


@dataclass(frozen=True)
class Move:
    """`amount_units` move from `source` to `target`."""

    source: Ref
    target: Ref
    amount_units: int


def ledger_post(
    *,
    kind: str,
    moves: Iterable[Move] = (),
    entries: Iterable[tuple[Ref, int]] = (),
    memo: str = "",
    invoice=None,
    payment=None,
    transfer=None,
) -> LedgerTransaction | None:
    """Post one transaction; refuse it unless its entries sum to zero. Nothing to post: None.

    Call inside the database transaction of the state change that causes it (the caller's
    atomic block), so the books and the state commit together.
    """
    lines: dict[Ref, int] = defaultdict(int)
    for ref, amount in entries:
        lines[ref] += int(amount)
    for move in moves:
        amount = int(move.amount_units)
        if amount < 0:
            raise Unbalanced(f"A move of {amount} units: moves carry positive amounts.")
        lines[move.source] += amount
        lines[move.target] -= amount
    lines = {ref: amount for ref, amount in lines.items() if amount}
    if sum(lines.values()) != 0:
        raise Unbalanced(f"{kind}: entries sum to {sum(lines.values())}, not zero: {lines}")
    if not lines:
        return None
    # The caller's transaction holds the state change too: no savepoint of our own needed.
    with transaction.atomic(savepoint=False):
        posted = LedgerTransaction.objects.create(
            kind=kind, memo=memo[:300], invoice=invoice, payment=payment, transfer=transfer
        )
        LedgerEntry.objects.bulk_create(
            LedgerEntry(transaction=posted, account=ref.account, ref=ref.ref, amount_units=amount)
            for ref, amount in lines.items()
        )
    return posted


def _natural(account: str, signed: int) -> int:
    return signed if account == Account.WALLET else -signed


def balance(ref: Ref) -> int:
    """Return the account's balance read the natural way: held, or owed."""
    total = LedgerEntry.objects.filter(account=ref.account, ref=ref.ref).aggregate(
        total=Sum("amount_units")
    )["total"]
    return _natural(ref.account, int(total or 0))


def balances(account: str, refs: Iterable[object] | None = None) -> dict[str, int]:
    """Return {ref: balance} for one kind of account, optionally for some refs only."""
    rows = LedgerEntry.objects.filter(account=account)
    if refs is not None:
        rows = rows.filter(ref__in=[str(ref) for ref in refs])
    totals = rows.values("ref").annotate(total=Sum("amount_units")).values_list("ref", "total")
    return {ref: _natural(account, int(total)) for ref, total in totals if total}


def total(account: str) -> int:
    """Return the balance of every account of one kind together."""
    value = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount_units"))
    return _natural(account, int(value["total"] or 0))
