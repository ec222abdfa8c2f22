"""Prove the books: the ledger's own rules, and the ledger against the chain.

1. Every transaction's entries sum to zero.
2. No balance that must stay non-negative is negative (what Vendo owes, what it holds).
3. The wallet account equals the token balance of PAYMENT_RECIPIENT on chain, once what is
   on its way is accounted for: transfers received but not yet confirmed enough to book, and
   payouts and refunds mined but not yet confirmed enough to book.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from marketplace.models import OperatorAlert
from marketplace.services import alert_clear, alert_raise
from payments import chain
from payments.models import Account, LedgerCheck, LedgerEntry, OnchainTransfer, Payment
from payments.services.ledger import NEVER_NEGATIVE, total

MAX_PROBLEMS_KEPT = 20
KEEP_CHECKS_DAYS = 30


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    chain_balance: int | None = None
    wallet: int = 0
    incoming_unbooked: int = 0
    outgoing_unbooked: int = 0
    block: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def expected_chain_balance(self) -> int:
        return self.wallet + self.incoming_unbooked - self.outgoing_unbooked


def unbalanced_transactions() -> list[tuple[int, int]]:
    rows = (
        LedgerEntry.objects.values("transaction_id")
        .annotate(total=Sum("amount_units"))
        .exclude(total=0)
        .values_list("transaction_id", "total")
    )
    return [(transaction_id, int(amount)) for transaction_id, amount in rows]


def negative_balances() -> list[tuple[str, str, int]]:
    rows = (
        LedgerEntry.objects.filter(account__in=NEVER_NEGATIVE)
        .values("account", "ref")
        .annotate(total=Sum("amount_units"))
        .values_list("account", "ref", "total")
    )
    found = []
    for account, ref, signed in rows:
        natural = int(signed) if account == Account.WALLET else -int(signed)
        if natural < 0:
            found.append((account, ref, natural))
    return found


def ledger_reconcile(*, against_chain: bool = True) -> Report:
    """Check the three rules; read the chain up to its head first so nothing is unrecorded.

    The books are read in one snapshot (REPEATABLE READ on PostgreSQL) and the chain at the
    block the watcher has read up to, so work going on meanwhile never looks like a mismatch.
    """
    report = Report()
    head = None
    if against_chain:
        from payments.services.watcher import scan_to_head

        head = scan_to_head()
        if head is None:
            report.problems.append("The watcher could not catch up with the chain head.")
            return report
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:  # must come first in its transaction; an outer one has its own
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for transaction_id, amount in unbalanced_transactions():
            report.problems.append(
                f"Rule 1: ledger transaction {transaction_id} sums to {amount}, not zero."
            )
        for account, ref, amount in negative_balances():
            report.problems.append(f"Rule 2: account {account}:{ref} is negative ({amount} units).")
        report.wallet = total(Account.WALLET)
        if head is None:
            return report
        # Received, counted, not yet booked (waiting for confirmations), mined by `head`.
        report.incoming_unbooked = sum(
            int(units)
            for units in Payment.objects.filter(
                status=Payment.Status.PENDING, is_booked=False, block_number__lte=head
            ).values_list("amount_units", flat=True)
        )
        outgoing = list(
            OnchainTransfer.objects.filter(
                status__in=[OnchainTransfer.Status.SIGNED, OnchainTransfer.Status.SENT]
            )
        )
    report.block = head
    report.chain_balance = chain.token_balance(chain.recipient(), block=head)
    # Sent and mined by `head`, not yet booked out of the wallet (waiting for confirmations).
    for transfer in outgoing:
        receipt = chain.receipt(transfer.tx_hash)
        if receipt is not None and receipt["status"] == 1 and receipt["blockNumber"] <= head:
            report.outgoing_unbooked += int(transfer.amount_units)
    if report.chain_balance != report.expected_chain_balance:
        report.problems.append(
            f"Rule 3: at block {head} the recipient holds {report.chain_balance} units on chain, "
            f"but the ledger's wallet ({report.wallet}) plus transfers received and not yet "
            f"booked ({report.incoming_unbooked}) less transfers sent and not yet booked "
            f"({report.outgoing_unbooked}) is {report.expected_chain_balance} "
            f"(off by {report.chain_balance - report.expected_chain_balance})."
        )
    return report


def ledger_watch() -> LedgerCheck:
    """Check the books against the chain, as beat does every LEDGER_CHECK_INTERVAL.

    The result is kept for the operators' home. A broken rule raises an operator alert when
    two checks in a row find it (a single one may have raced a transfer mined at that
    moment); the alert clears at the next check that holds.
    """
    report = ledger_reconcile()
    previous = LedgerCheck.objects.first()  # the newest
    check = LedgerCheck.objects.create(
        ok=report.ok,
        problems=report.problems[:MAX_PROBLEMS_KEPT],
        block=report.block,
        chain_units=report.chain_balance,
        expected_units=report.expected_chain_balance if report.block is not None else None,
    )
    LedgerCheck.objects.filter(
        checked_at__lt=timezone.now() - timedelta(days=KEEP_CHECKS_DAYS)
    ).delete()
    if report.ok:
        alert_clear(kind=OperatorAlert.Kind.LEDGER)
    elif previous is not None and not previous.ok:
        alert_raise(
            kind=OperatorAlert.Kind.LEDGER,
            message=(
                f"The books failed their check against the chain two checks in a row: "
                f"{report.problems[0]} Run manage.py ledger_check for the whole report."
            ),
        )
    return check
