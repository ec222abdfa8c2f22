"""Deploy TestUSDC on the dev chain once, fund the demo buyers, record the token address."""

import json
from contextlib import nullcontext

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from web3 import Web3

from payments import devchain

FUNDED_ACCOUNTS = range(1, 9)  # anvil accounts #1-#8 are demo buyers; #9 receives payments
FUNDING_UNITS = 10_000 * 10**6  # 10,000 USDC each


class Command(BaseCommand):
    help = (
        "Deploy TestUSDC on the dev chain (once), fund the demo buyer accounts and record the "
        "token address in var/devchain.json. Starts anvil for the duration if it is not running."
    )

    def handle(self, *args, **options):
        if settings.CHAIN_ID != devchain.CHAIN_ID:
            raise CommandError(f"devchain_setup is for the dev chain ({devchain.CHAIN_ID}) only.")
        url = settings.CHAIN_RPC_URL
        w3 = Web3(Web3.HTTPProvider(url))
        running = w3.is_connected()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        context = (
            nullcontext() if running else devchain.start_anvil(port=port, state_path=STATE_PATH)
        )
        with context as anvil:
            devchain.wait_for_rpc(url, proc=anvil)
            address = self.token(w3)
            for index in FUNDED_ACCOUNTS:
                self.fund(w3, address, devchain.ANVIL_ACCOUNTS[index][0])
        settings.DEVCHAIN_FILE.parent.mkdir(parents=True, exist_ok=True)
        settings.DEVCHAIN_FILE.write_text(
            json.dumps({"token_address": address, "rpc_url": url}, indent=2)
        )
        self.stdout.write(self.style.SUCCESS(f"TestUSDC at {address}; demo buyers funded."))

    def token(self, w3: Web3) -> str:
        """Return the recorded token if the chain still has it, else deploy a new one."""
        if settings.DEVCHAIN_FILE.is_file():
            address = json.loads(settings.DEVCHAIN_FILE.read_text())["token_address"]
            if w3.eth.get_code(Web3.to_checksum_address(address)):
                return Web3.to_checksum_address(address)
        deployer = devchain.ANVIL_ACCOUNTS[0][0]
        address = devchain.deploy(w3, "TestUSDC", sender=deployer)
        self.stdout.write(f"Deployed TestUSDC at {address}.")
        return address

    def fund(self, w3: Web3, token: str, account: str) -> None:
        contract = w3.eth.contract(address=token, abi=devchain.load_artifact("TestUSDC")["abi"])
        balance = contract.functions.balanceOf(account).call()
        if balance < FUNDING_UNITS:
            devchain.mint(
                w3, token, account, FUNDING_UNITS - balance, devchain.ANVIL_ACCOUNTS[0][0]
            )


STATE_PATH = settings.VAR_DIR / "anvil" / "state.json"
