"""Start-up checks: Vendo refuses to take payments into a key everybody has.

Registered as errors (not only deploy checks), so `runserver`, `migrate`, the worker's
start-up and `check --deploy` all refuse an unsafe configuration.
"""

from django.conf import settings
from django.core.checks import Error, register
from eth_account import Account
from web3 import Web3

from payments.devchain import ANVIL_ACCOUNTS
from payments.devchain import CHAIN_ID as DEV_CHAIN_ID

DEV_ADDRESSES = {Web3.to_checksum_address(address) for address, _ in ANVIL_ACCOUNTS}


def _address(value: str) -> str | None:
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError):
        return None


@register()
def payment_settings(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    on_dev_chain = settings.CHAIN_ID == DEV_CHAIN_ID
    recipient = _address(settings.PAYMENT_RECIPIENT)
    if recipient is None:
        errors.append(
            Error(
                "PAYMENT_RECIPIENT is not set to an EVM address.",
                hint="Set PAYMENT_RECIPIENT to the platform's receiving address (0x...).",
                id="payments.E001",
            )
        )
    elif recipient in DEV_ADDRESSES and not on_dev_chain:
        errors.append(
            Error(
                f"PAYMENT_RECIPIENT {recipient} is one of anvil's dev accounts, whose private "
                f"key is public, on chain {settings.CHAIN_ID}.",
                hint="Use an address whose key only the platform holds.",
                id="payments.E002",
            )
        )
    signer = None
    if settings.PLATFORM_SIGNER_KEY:
        try:
            signer = Account.from_key(settings.PLATFORM_SIGNER_KEY).address
        except Exception:
            errors.append(Error("PLATFORM_SIGNER_KEY is not a private key.", id="payments.E003"))
    else:
        errors.append(
            Error(
                "PLATFORM_SIGNER_KEY is not set: payouts and refunds cannot be signed.",
                hint="Set the private key of PAYMENT_RECIPIENT (keep it out of the repository).",
                id="payments.E003",
            )
        )
    if signer is not None:
        if signer in DEV_ADDRESSES and not on_dev_chain:
            errors.append(
                Error(
                    f"PLATFORM_SIGNER_KEY is the key of anvil's dev account {signer}, which "
                    f"everybody has, on chain {settings.CHAIN_ID}.",
                    id="payments.E004",
                )
            )
        if recipient is not None and signer != recipient:
            errors.append(
                Error(
                    f"PLATFORM_SIGNER_KEY signs for {signer}, but payments go to {recipient}.",
                    hint="Payouts and refunds leave the wallet that receives payments: the "
                    "signer's address must be PAYMENT_RECIPIENT.",
                    id="payments.E005",
                )
            )
    if not settings.PAYMENT_TOKEN_ADDRESS and not settings.ON_DEV_CHAIN:
        errors.append(
            Error(
                "PAYMENT_TOKEN_ADDRESS is not set.",
                hint="Set the USDC contract of CHAIN_ID (on Base, chain 8453: "
                "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913). var/devchain.json is read only "
                "on the dev chain in DEBUG.",
                id="payments.E006",
            )
        )
    return errors
