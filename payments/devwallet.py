"""The dev wallet: pays invoices from a funded anvil account, so a demo needs no wallet."""

from django.conf import settings

from payments import chain, devchain
from payments.models import Invoice

# Anvil's account #1, funded with TestUSDC by devchain_setup. A public dev key.
BUYER_ADDRESS, BUYER_KEY = devchain.ANVIL_ACCOUNTS[1]


def enabled() -> bool:
    return settings.DEV_WALLET_ENABLED


def pay(invoice: Invoice) -> str:
    """Send the amount due from the dev buyer account; return the transaction hash."""
    return devchain.transfer(
        chain.web3(), invoice.token_address, invoice.recipient, invoice.due_units, BUYER_KEY
    )
