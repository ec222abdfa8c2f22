"""Run the dev chain (anvil) in the foreground, keeping its state in var/anvil/."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from payments import devchain
from payments.management.commands.devchain_setup import STATE_PATH


class Command(BaseCommand):
    help = "Run anvil on CHAIN_RPC_URL's port with state kept in var/anvil/state.json."

    def handle(self, *args, **options):
        port = int(settings.CHAIN_RPC_URL.rsplit(":", 1)[1].split("/")[0])
        anvil = devchain.start_anvil(port=port, state_path=STATE_PATH)
        # Stop anvil (which saves its state) however this process is asked to end.
        signal.signal(signal.SIGTERM, lambda *_: anvil.stop())
        try:
            devchain.wait_for_rpc(anvil.url, proc=anvil)
            self.stdout.write(self.style.SUCCESS(f"Dev chain on {anvil.url}"), ending="\n")
            self.stdout.flush()
            anvil.wait()
        except KeyboardInterrupt:
            pass
        finally:
            anvil.stop()
