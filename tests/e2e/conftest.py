"""Browser fixtures: Debian's headless chromium driven by Playwright's sync API.

Playwright's own browser download cannot work on these machines, so the tests launch
/usr/bin/chromium (`make test` installs it with scripts/ensure_chromium.sh). Pages are served
by pytest-django's `live_server` (a thread of this process, on the test database, static files
included); paid jobs run on the session's real Celery worker.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium dials out, and this closed network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# Generous waits, never timings: a slow machine only makes the tests slower, not red.
TIMEOUT_MS = 60_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="package")
def browser():
    """One headless chromium for the e2e tests, closed before the rest of the suite runs.

    The sync API keeps an asyncio loop running in this thread while the browser is open, and
    Django refuses ORM calls when it sees one (SynchronousOnlyOperation), even though nothing
    here is async. DJANGO_ALLOW_ASYNC_UNSAFE lifts that check for exactly the browser's
    lifetime, the workaround Playwright documents for Django.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (apt-get install chromium)"
        )
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class PageProblems(list):
    """What went wrong in the browser: script errors, console errors, error responses.

    A Content-Security-Policy violation is a console error, so it counts too.
    """

    def __init__(self, origin: str) -> None:
        super().__init__()
        self.origin = origin
        self.expected: set[tuple[int, str]] = set()

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message) -> None:
        # A failed load is logged too; _response() judges those, with the URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        # The admin's pages link no icon, so chromium asks for /favicon.ico, which Vendo does
        # not serve. Every other error response counts (a missing stylesheet or script too).
        if response.url == f"{self.origin}/favicon.ico":
            return
        if (response.status, response.url) in self.expected:
            return
        if response.url.startswith(self.origin) and response.status >= 400:
            self.append(f"HTTP {response.status} {response.request.method} {response.url}")

    def expect_status(self, status: int, path: str) -> None:
        """Accept an error response the test asks for (the 404 or 429 page it visits)."""
        self.expected.add((status, f"{self.origin}{path}"))


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (cookies, storage) per test, on the live server.

    The test fails if the page raised a script error, logged a console error or got an error
    response from the server (a missing stylesheet or script included), favicon.ico aside.
    """
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems = PageProblems(live_server.url)
    problems.watch(page)
    page.problems = problems
    try:
        yield page
    finally:
        context.close()
    if problems:
        pytest.fail("The browser reported problems:\n" + "\n".join(problems))


def new_tab(page: Page) -> Page:
    """Open a second tab in the page's context (same storage), watched for problems too."""
    tab = page.context.new_page()
    page.problems.watch(tab)
    tab.problems = page.problems
    return tab


def recheck_now() -> None:
    """Run the watcher's recheck of transfers now, as its beat would a few seconds later."""
    from django.utils import timezone

    from payments.models import Payment
    from payments.services.watcher import payments_recheck

    Payment.objects.update(next_check_at=timezone.now())
    payments_recheck()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def shot(page, screenshot_dir):
    """shot("buyer-01-catalog") saves a full-page screenshot as var/screenshots/<name>.png.

    shot(name, of=tab) takes it of another tab than the test's page.
    """

    def save(name: str, of: Page | None = None) -> Path:
        if not re.fullmatch(r"[a-z]+-\d\d-[a-z0-9-]+", name):
            raise ValueError(f"name screenshots <test>-<step>-<what>, not {name!r}")
        path = screenshot_dir / f"{name}.png"
        (of or page).screenshot(path=str(path), full_page=True)
        return path

    return save


def assert_styled(page: Page) -> None:
    """The stylesheet loaded and applies: the header is laid out by vendo.css, not the UA."""
    display = page.locator(".site-header .nav").evaluate("node => getComputedStyle(node).display")
    assert display == "flex", f"vendo.css did not apply (.nav is display: {display})"


# ------------------------------------------------------------------------------
# An injected browser wallet (EIP-1193) backed by a key in this process
# ------------------------------------------------------------------------------

# window.ethereum as a wallet extension injects it, before the page's own scripts run.
# Every request goes to InjectedWallet.request() through a binding Playwright exposes.
WALLET_SHIM = """
(() => {
  const listeners = {};
  const emit = (event, value) => {
    for (const listener of (listeners[event] || []).slice()) listener(value);
  };
  const provider = {
    isVendoE2E: true,
    request({ method, params } = {}) {
      return window.__e2eWallet(method, params || []).then((reply) => {
        // What the wallet announced while answering (a network switch) reaches the page first.
        for (const [event, value] of (reply && reply.events) || []) emit(event, value);
        if (reply && reply.error) {
          const error = new Error(reply.error.message);
          error.code = reply.error.code;
          throw error;
        }
        return reply ? reply.result : null;
      });
    },
    on(event, listener) {
      (listeners[event] = listeners[event] || []).push(listener);
      return provider;
    },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] || []).filter((known) => known !== listener);
      return provider;
    },
  };
  window.ethereum = provider;
})();
"""


class WalletError(Exception):
    """An EIP-1193 provider error: the page reads its numeric `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class InjectedWallet:
    """A browser wallet holding one funded account, as an extension would provide it.

    It starts on another network (Ethereum mainnet, chain 1) and switches when the page asks,
    as a real wallet does, announcing `chainChanged`. eth_sendTransaction refuses a request
    whose chainId is not the wallet's network, fills in nonce, gas and gas price, signs
    locally with the account's key for the selected chain, broadcasts the raw transaction to
    the node and returns the hash at once, without waiting for it to be mined. personal_sign
    signs with the same key (EIP-191). Other calls are forwarded to the node. Every request
    is recorded in `calls`, every hash sent in `sent`.

    Misbehaviours, for the tests: `switches=False` answers wallet_switchEthereumChain without
    switching; `declines_signatures` rejects personal_sign as a user would (4001);
    `switch_after(method, chain_id)` moves the wallet to another network right after it
    answers `method`, as a user who changes networks mid-flow.
    """

    def __init__(
        self,
        w3,
        address: str,
        private_key: str,
        *,
        chain_id: int = 1,
        switches: bool = True,
        declines_signatures: bool = False,
    ) -> None:
        from web3 import Web3

        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.private_key = private_key
        self.chain_id = chain_id
        self.switches = switches
        self.declines_signatures = declines_signatures
        self.calls: list[tuple[str, list]] = []
        self.sent: list[str] = []
        self._events: list[tuple[str, str]] = []
        self._switch_after: tuple[str, int] | None = None

    @property
    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def install(self, target: Page | BrowserContext) -> "InjectedWallet":
        """Inject the wallet into a page, or into every page of a browser context."""
        target.expose_function("__e2eWallet", self.request)
        target.add_init_script(WALLET_SHIM)
        return self

    def switch_after(self, method: str, chain_id: int) -> None:
        """Once `method` has been answered, move to `chain_id` and announce it."""
        self._switch_after = (method, chain_id)

    def request(self, method: str, params: list) -> dict:
        self.calls.append((method, params))
        try:
            reply = {"result": self._handle(method, params)}
        except WalletError as error:
            reply = {"error": {"code": error.code, "message": error.message}}
        except Exception as error:  # what a wallet reports as an internal JSON-RPC error
            reply = {"error": {"code": -32603, "message": f"{type(error).__name__}: {error}"}}
        if self._switch_after and self._switch_after[0] == method:
            self._move_to(self._switch_after[1])
            self._switch_after = None
        reply["events"], self._events = self._events, []
        return reply

    def _move_to(self, chain_id: int) -> None:
        if chain_id != self.chain_id:
            self.chain_id = chain_id
            self._events.append(("chainChanged", hex(chain_id)))

    def _handle(self, method: str, params: list):
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "wallet_switchEthereumChain":
            wanted = int(params[0]["chainId"], 16)
            if wanted != self.w3.eth.chain_id:
                raise WalletError(4902, f"Unrecognized chain ID {hex(wanted)}.")
            if self.switches:
                self._move_to(wanted)
            return None
        if method == "eth_sendTransaction":
            return self._send(params[0])
        if method == "personal_sign":
            return self._sign(*params[:2])
        reply = self.w3.provider.make_request(method, params)
        if "error" in reply:
            raise WalletError(reply["error"].get("code", -32603), reply["error"]["message"])
        return reply["result"]

    def _authorised(self, address: str) -> None:
        from web3 import Web3

        if Web3.to_checksum_address(address) != self.address:
            raise WalletError(4100, "The requested account has not been authorized.")

    def _sign(self, message: str, address: str) -> str:
        from eth_account import Account
        from eth_account.messages import encode_defunct

        self._authorised(address)
        if self.declines_signatures:
            raise WalletError(4001, "User rejected the request.")
        # As MetaMask: a 0x-prefixed message is hex of the bytes, anything else is UTF-8 text.
        if message.startswith("0x"):
            signable = encode_defunct(hexstr=message)
        else:
            signable = encode_defunct(text=message)
        return Account.sign_message(signable, self.private_key).signature.to_0x_hex()

    def _send(self, request: dict) -> str:
        from eth_account import Account
        from web3 import Web3

        self._authorised(request["from"])
        if "chainId" in request and int(request["chainId"], 16) != self.chain_id:
            raise WalletError(
                -32602,
                f"Invalid transaction params: chainId {request['chainId']} is not the "
                f"current chainId {hex(self.chain_id)}.",
            )
        call = {
            "from": self.address,
            "to": Web3.to_checksum_address(request["to"]),
            "data": request.get("data") or "0x",
            "value": int(request.get("value") or "0x0", 16),
        }
        transaction = {
            **{key: value for key, value in call.items() if key != "from"},
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            "gas": self.w3.eth.estimate_gas(call),
            "gasPrice": self.w3.eth.gas_price,
        }
        signed = Account.sign_transaction(transaction, self.private_key)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        self.sent.append(tx_hash)
        return tx_hash
