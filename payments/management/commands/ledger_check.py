"""Prove the books: exit 0 if every rule holds, else 1 with each rule broken and its rows."""

from django.core.management.base import BaseCommand

from payments.services.reconciliation import ledger_reconcile


class Command(BaseCommand):
    help = (
        "Check that every ledger transaction sums to zero, that no balance that must stay "
        "non-negative is negative, and that the wallet account equals the recipient's token "
        "balance on chain (less what is on its way). Exit 1 if any rule breaks."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-chain", action="store_true", help="Check the ledger's own rules only."
        )

    def handle(self, *args, no_chain=False, **options):
        report = ledger_reconcile(against_chain=not no_chain)
        if report.chain_balance is not None:
            self.stdout.write(
                f"Block {report.block}: recipient holds {report.chain_balance} units; ledger "
                f"wallet {report.wallet}, received not yet booked {report.incoming_unbooked}, "
                f"sent not yet booked {report.outgoing_unbooked}."
            )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("The books balance."))
            return
        for problem in report.problems:
            self.stderr.write(self.style.ERROR(problem))
        raise SystemExit(1)
